"""The checkout's authorization on the event loop (``PaymentRouter.authorize_async``) decides exactly as the
blocking one the worker uses: every router decision test runs again through the async driver, once with processors
that only block (called in the router's pool) and once with processors that have ``*_async`` methods (awaited on
the loop, no thread)."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from shopfloor.payments import PaymentAttempt, PaymentRouter, RouterPolicy
from tests.unit import test_payments_router as blocking

DECISION_TESTS = sorted(
    name for name, fn in vars(blocking).items()
    if name.startswith("test_") and inspect.isfunction(fn) and not inspect.signature(fn).parameters
    and ".authorize(" in inspect.getsource(fn)
    # Which thread a blocking call runs in is not a decision: on the loop every blocking call goes to the pool.
    and "threading.get_ident" not in inspect.getsource(fn)
)
FAILOVER_ERRORS = ["refuse", "5xx"]


def _authorize_on_a_loop(self, attempt, *, budget_s, before_call=None):
    return asyncio.run(self.authorize_async(attempt, budget_s=budget_s, before_call=before_call))


class AsyncScriptedProcessor(blocking.ScriptedProcessor):
    """The scripted processor with the HTTP adapter's async face."""

    honours_timeout = True

    async def authorize_async(self, *args, **kw):
        return self.authorize(*args, **kw)

    async def void_async(self, *args, **kw):
        return self.void(*args, **kw)

    async def status_async(self, *args, **kw):
        return self.status(*args, **kw)


@pytest.fixture(params=["blocking processors", "async processors"])
def async_driver(request, monkeypatch):
    monkeypatch.setattr(PaymentRouter, "authorize", _authorize_on_a_loop)
    if request.param == "async processors":
        monkeypatch.setattr(blocking, "ScriptedProcessor", AsyncScriptedProcessor)
    return request.param


def test_the_router_has_decision_tests_to_replay():
    assert len(DECISION_TESTS) >= 15


@pytest.mark.parametrize("name", DECISION_TESTS)
def test_the_async_authorization_decides_as_the_blocking_one(name, async_driver):
    getattr(blocking, name)()


@pytest.mark.parametrize("error", FAILOVER_ERRORS)
def test_the_async_authorization_fails_over_as_the_blocking_one(error, async_driver):
    blocking.test_router_fails_over_on_errors_that_certainly_did_not_charge(error)


def test_processors_with_async_calls_are_awaited_on_the_loop_without_a_thread():
    primary = AsyncScriptedProcessor("primary", ["lost"])  # a lost answer: status, then the charge is found
    router = PaymentRouter([primary], policy=RouterPolicy(call_timeout_s=0.5, status_timeout_s=0.5))
    result = asyncio.run(router.authorize_async(PaymentAttempt("k1", "o1", 100, "USD", "tok"), budget_s=2))
    assert result.approved and [op for op, _ in primary.calls] == ["authorize", "status"]
    assert router._executor is None  # no pool thread was started


def test_a_blocking_processor_that_ignores_its_timeout_is_cut_off_at_the_deadline_on_the_loop():
    primary = blocking.ScriptedProcessor("primary", ["sleep"])
    router = PaymentRouter([primary], policy=RouterPolicy(call_timeout_s=0.2, status_timeout_s=0.2))
    started = asyncio.run(_timed(router.authorize_async(PaymentAttempt("k1", "o1", 100, "USD", "tok"),
                                                        budget_s=0.3)))
    result, seconds = started
    assert result.outcome == "pending" and seconds < 0.6


async def _timed(coro):
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    out = await coro
    return out, loop.time() - t0
