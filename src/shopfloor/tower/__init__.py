"""Control tower: funnel metrics, anomaly detection, rules that act.

Public entry points (import from here; the submodules hold the details):

* anomaly detection: :class:`SeasonalRobustDetector`, :class:`RollingZScoreDetector`, :class:`Alert`, :func:`detect`
* funnel: :class:`FunnelBuffer`, :class:`FunnelRecorder`, :class:`FunnelMonitor`, :class:`FunnelMetrics`
* rules: :func:`load_rules_file`, :func:`parse_condition`, :class:`RuleEngine`, :func:`build_rule_engine`
  and the ports the integrator binds (:class:`SignalProvider`, :class:`CapacityPlanSource`, :class:`Scaler`,
  :class:`PaymentRouting`, :class:`WarmListSource`, :class:`AlternativesSource`, :class:`Mailer`)

Importing this package opens no connection and starts no thread.
"""

from .actions import (
    ActionLog,
    AlternativesSource,
    CapacityPlanSource,
    CompositeSignals,
    InMemoryActionLog,
    Mailer,
    PaymentRouting,
    RuleEngine,
    Scaler,
    SignalProvider,
    StaticSignals,
    WarmListSource,
)
from .anomaly import Alert, RollingZScoreDetector, SeasonalRobustDetector, StreamingDetector, detect
from .metrics import FunnelMetrics, http_metrics_middleware, render_latest
from .monitor import FunnelMonitor, MonitorSignals
from .rules import DEFAULT_SIGNALS, RuleError, RuleSet, SignalCatalog, load_rules_file, parse_condition, parse_rules
from .service import DatabaseSignals, FunnelBuffer, FunnelRecorder, TowerLoop, build_rule_engine

__all__ = [
    "ActionLog", "Alert", "AlternativesSource", "CapacityPlanSource", "CompositeSignals", "DEFAULT_SIGNALS",
    "DatabaseSignals", "FunnelBuffer", "FunnelMetrics", "FunnelMonitor", "FunnelRecorder", "InMemoryActionLog",
    "Mailer", "MonitorSignals", "PaymentRouting", "RollingZScoreDetector", "RuleEngine", "RuleError", "RuleSet",
    "Scaler", "SeasonalRobustDetector", "SignalCatalog", "SignalProvider", "StaticSignals", "StreamingDetector", "TowerLoop",
    "WarmListSource", "build_rule_engine", "detect", "http_metrics_middleware", "load_rules_file",
    "parse_condition", "parse_rules", "render_latest",
]
