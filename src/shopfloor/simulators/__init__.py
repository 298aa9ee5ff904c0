"""Simulated payment processors and carrier-rate service, with injectable faults: in-process (:mod:`.gateway`) or
served as their own HTTP process (``shopfloor simulate serve``: :mod:`.server`, called through :mod:`.client`).
Public entry point.

They stand in for other companies' systems behind the same protocols a real adapter implements
(:class:`~shopfloor.payments.PaymentProcessor`, :class:`~shopfloor.orders.shipping.RateQuoter`). Importing this
package loads a submodule only when one of its names is first used.
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "RATES_SERVICE": "gateway",
    "FaultConfig": "gateway",
    "FaultPatch": "gateway",
    "FaultStore": "gateway",
    "SimulatedProcessor": "gateway",
    "SimulatedRateService": "gateway",
    "ledger": "gateway",
    "HttpProcessor": "client",
    "HttpRateQuoter": "client",
    "build_sim_app": "server",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
