"""Control tower: funnel metrics, anomaly detection, rules that act.

Public entry points (import from here; the submodules hold the details):

* anomaly detection: :class:`SeasonalRobustDetector`, :class:`RollingZScoreDetector`, :class:`Alert`, :func:`detect`
* funnel: :class:`FunnelBuffer`, :class:`FunnelRecorder`, :class:`FunnelMonitor`, :class:`FunnelMetrics`
* rules: :func:`load_rules_file`, :class:`RulesFileWatch`, :func:`parse_condition`, :class:`RuleEngine`,
  :func:`build_rule_engine`
  and the ports the integrator binds (:class:`SignalProvider`, :class:`CapacityPlanSource`, :class:`Scaler`,
  :class:`PaymentRouting`, :class:`WarmListSource`, :class:`CacheWarmer`, :class:`AlternativesSource`, :class:`Mailer`)

Importing this package opens no connection, starts no thread, and loads a submodule only when one of its
names is first used (so ``import shopfloor.tower.metrics`` stays light).
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "ActionLog": "actions",
    "AlternativesSource": "actions",
    "CapacityPlanSource": "actions",
    "CompositeSignals": "actions",
    "InMemoryActionLog": "actions",
    "Mailer": "actions",
    "PaymentRouting": "actions",
    "RuleEngine": "actions",
    "Scaler": "actions",
    "SignalProvider": "actions",
    "StaticSignals": "actions",
    "WarmListSource": "actions",
    "CacheWarmer": "actions",
    "Alert": "anomaly",
    "RollingZScoreDetector": "anomaly",
    "SeasonalRobustDetector": "anomaly",
    "StreamingDetector": "anomaly",
    "detect": "anomaly",
    "FunnelMetrics": "metrics",
    "http_metrics_middleware": "metrics",
    "render_latest": "metrics",
    "FunnelMonitor": "monitor",
    "MonitorSignals": "monitor",
    "DEFAULT_SIGNALS": "rules",
    "RuleError": "rules",
    "RuleSet": "rules",
    "RulesFileWatch": "rules",
    "SignalCatalog": "rules",
    "load_rules_file": "rules",
    "parse_condition": "rules",
    "parse_rules": "rules",
    "DatabaseSignals": "service",
    "FunnelBuffer": "service",
    "FunnelRecorder": "service",
    "TowerLoop": "service",
    "build_rule_engine": "service",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
