"""The concrete collaborators bootstrap wires into the buy path and the worker do what the ports in
``orders/ports.py`` say: every method the port names exists, and accepts the port's call."""

from __future__ import annotations

import dataclasses
import inspect
import typing

import pytest

from shopfloor.orders import ports
from shopfloor.orders.checkout import CheckoutService
from shopfloor.orders.fraud import FraudScreen
from shopfloor.orders.notify import ConfirmationMailer
from shopfloor.orders.payments_service import PaymentsService
from shopfloor.orders.shipping import ShippingQuoter
from shopfloor.orders.webhooks import WarehouseWebhook
from shopfloor.payments import PaymentRouter
from shopfloor.promise.degradations import RuleDegradedEngine
from shopfloor.promise.engine import Promise, PromiseEngine
from shopfloor.tower.observer import FunnelObserver

WIRED = [
    (ports.OrderWriter, CheckoutService),
    (ports.InlinePayments, PaymentsService),
    (ports.WorkerPayments, PaymentsService),
    (ports.ShippingQuotes, ShippingQuoter),
    (ports.ShippingReconciler, ShippingQuoter),
    (ports.ProcessorCalls, PaymentRouter),
    (ports.FraudScreening, FraudScreen),
    (ports.OrderPromises, PromiseEngine),
    (ports.OrderPromises, RuleDegradedEngine),
    (ports.LinePromise, Promise),
    (ports.CheckoutObserver, FunnelObserver),
    (ports.Notifier, ConfirmationMailer),
    (ports.WebhookSender, WarehouseWebhook),
]


def _members(port: type) -> tuple[dict[str, typing.Any], set[str]]:
    """(methods, attributes) the port declares."""
    methods = {name: fn for name, fn in vars(port).items() if inspect.isfunction(fn) and not name.startswith("_")}
    attributes = set(vars(port).get("__annotations__", {}))
    attributes |= {name for name, v in vars(port).items() if isinstance(v, property)}
    return methods, attributes


def _has_attribute(cls: type, name: str) -> bool:
    if dataclasses.is_dataclass(cls) and name in {f.name for f in dataclasses.fields(cls)}:
        return True
    return hasattr(cls, name) or f"self.{name} =" in inspect.getsource(cls)


def _accepts(impl, port_fn) -> list[str]:
    """Why ``impl`` cannot be called the way the port's method is (empty: it can)."""
    have = inspect.signature(impl).parameters
    if any(p.kind is p.VAR_KEYWORD for p in have.values()) and any(p.kind is p.VAR_POSITIONAL for p in have.values()):
        return []
    want = [p for n, p in inspect.signature(port_fn).parameters.items() if n != "self"]
    problems = [f"no parameter {p.name!r}" for p in want if p.name not in have]
    wanted = {p.name for p in want} | {"self"}
    problems += [f"extra required parameter {n!r}" for n, p in have.items()
                 if n not in wanted and p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return problems


@pytest.mark.parametrize(("port", "cls"), WIRED, ids=[f"{c.__name__}-is-{p.__name__}" for p, c in WIRED])
def test_each_wired_collaborator_does_what_its_port_says(port, cls):
    methods, attributes = _members(port)
    assert methods or attributes, f"{port.__name__} declares nothing"
    for name in attributes:
        assert _has_attribute(cls, name), f"{cls.__name__} has no {name!r}"
    for name, fn in methods.items():
        impl = getattr(cls, name, None)
        assert callable(impl), f"{cls.__name__} has no method {name!r}"
        assert inspect.iscoroutinefunction(impl) == inspect.iscoroutinefunction(fn), f"{name}: async differs"
        assert _accepts(impl, fn) == [], f"{cls.__name__}.{name}"


def test_the_buy_path_types_its_collaborators_by_port_not_any():
    from shopfloor.orders.service import BuyPath

    hints = typing.get_type_hints(BuyPath.__init__, localns=vars(ports))
    assert hints["checkout"] is ports.OrderWriter
    for name, port in (("payments", ports.InlinePayments), ("promise", ports.OrderPromises),
                       ("observer", ports.CheckoutObserver)):
        assert hints[name] == port | None
