"""Kubernetes manifests that actuate a :class:`~shopfloor.planning.capacity.CapacityPlan`.

* A KEDA ``ScaledObject`` (``keda.sh/v1alpha1``): one ``cron`` trigger per planned window (start = window start
  minus the boot lag, so replicas are ready when the window opens; ``desiredReplicas`` = the plan), one per
  campaign-calendar event with a known or learned uplift (``event-<kind>-NNN``: from the event's start minus the
  boot lag to its end, however far ahead it is), plus the
  reactive floor: a ``prometheus`` trigger on requests/s (threshold = per-replica capacity x target utilisation)
  and a ``cpu`` trigger. KEDA hands all triggers to one HPA, which scales to the *largest* of them: predictive
  plus target tracking, as the plan promises. Scale-in is slowed by an HPA ``behavior`` stabilisation window.
* The *predictive planner* itself: a ``metrics-api`` trigger that polls ``GET /v1/plans/capacity/desired`` (the
  replica count the backtested :class:`~shopfloor.planning.capacity.PredictivePlanner` asks for this minute,
  :mod:`shopfloor.planning.capacity_live`) with ``targetValue`` 1 and ``AverageValue``, so the HPA's desired count
  is the planner's. It authenticates with a bearer token (a ``scaler``-scoped API key) through a
  ``TriggerAuthentication`` (KEDA 2.13 or later), written beside the ScaledObject. ``planner_url="off"`` leaves
  it out.
* An ``autoscaling/v2`` ``HorizontalPodAutoscaler`` fallback for clusters without KEDA: CPU target tracking with
  ``minReplicas`` raised to the plan's peak for the horizon (coarser, but never below the plan). Apply one or the
  other, not both: two autoscalers on one Deployment fight.

Cron triggers name a date (minute hour day month), so each fires once in the coming hours (and would again a year
later): regenerate and re-apply the plan every slot or so (a Kubernetes CronJob running
``shopfloor capacity plan --k8s-out``), which also re-forecasts with the newest traffic.

Everything is plain dicts (YAML via PyYAML); tests validate them against vendored JSON schemas.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from .capacity import CapacityInputError, CapacityPlan

_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _setting(name: str) -> Any:
    """The default of the ``capacity_<name>`` setting: the settings are the one place these defaults are written."""
    from ..config import Settings

    return Settings.model_fields[f"capacity_{name}"].default


@dataclass(frozen=True)
class ManifestOptions:
    """Where and how the plan is applied (from Settings ``capacity_*`` fields; the defaults are theirs)."""

    deployment: str = _setting("deployment")
    namespace: str = _setting("namespace")
    prometheus_url: str = _setting("prometheus_url")
    rps_query: str = _setting("rps_query")
    cron_timezone: str = _setting("cron_timezone")
    cpu_utilization: int = int(round(_setting("target_utilization") * 100))
    scale_down_stabilization_s: int = 300
    polling_interval_s: int = 30
    cooldown_s: int = 300
    planner_url: str = _setting("planner_url")  # empty: http://<deployment>.<namespace>.svc:8000/...; "off": none
    planner_auth: str = _setting("planner_auth")  # TriggerAuthentication and Secret with the bearer token

    @property
    def planner_endpoint(self) -> str | None:
        if self.planner_url.strip().lower() == "off":
            return None
        return self.planner_url or (
            f"http://{self.deployment}.{self.namespace}.svc:8000/v1/plans/capacity/desired"
        )

    def validate(self) -> "ManifestOptions":
        for name in ("deployment", "namespace"):
            value = getattr(self, name)
            if not (1 <= len(value) <= 63 and _DNS1123.match(value)):
                raise CapacityInputError(name, f"{value!r} is not a valid Kubernetes name (RFC 1123 label)")
        try:
            ZoneInfo(self.cron_timezone)
        except Exception as exc:
            raise CapacityInputError("cron_timezone", f"unknown time zone {self.cron_timezone!r}") from exc
        if not 1 <= self.cpu_utilization <= 100:
            raise CapacityInputError("cpu_utilization", "must be within 1..100")
        endpoint = self.planner_endpoint
        if endpoint is not None and not re.match(r"^https?://[^\s/]+(/\S*)?$", endpoint):
            raise CapacityInputError("planner_url", f"{endpoint!r} is not an http(s) URL (or 'off')")
        if endpoint is not None and not (1 <= len(self.planner_auth) <= 253 and _DNS1123.match(self.planner_auth)):
            raise CapacityInputError("planner_auth", f"{self.planner_auth!r} is not a valid Kubernetes name")
        return self


def options_from_settings(settings: Any, **overrides: Any) -> ManifestOptions:
    values = dict(
        deployment=settings.capacity_deployment,
        namespace=settings.capacity_namespace,
        prometheus_url=settings.capacity_prometheus_url,
        rps_query=settings.capacity_rps_query,
        cron_timezone=settings.capacity_cron_timezone,
        cpu_utilization=int(round(settings.capacity_target_utilization * 100)),
        planner_url=settings.capacity_planner_url,
        planner_auth=settings.capacity_planner_auth,
    )
    values.update({k: v for k, v in overrides.items() if v is not None})
    return ManifestOptions(**values).validate()


def _cron(at: datetime, tz: ZoneInfo) -> str:
    """A five-field cron expression that fires once a year at ``at`` (minute, hour, day of month, month)."""
    local = at.astimezone(tz)
    return f"{local.minute} {local.hour} {local.day} {local.month} *"


def _dns_fragment(kind: str) -> str:
    """An event kind as a trigger-name fragment (lower case, letters, digits and dashes, at most 30 chars)."""
    frag = re.sub(r"[^a-z0-9]+", "-", kind.lower()).strip("-")
    return (frag or "event")[:30].strip("-") or "event"


def _labels(options: ManifestOptions) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": options.deployment,
        "app.kubernetes.io/managed-by": "shopfloor-capacity",
    }


def _behavior(options: ManifestOptions) -> dict[str, Any]:
    return {
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "selectPolicy": "Max",
            "policies": [
                {"type": "Percent", "value": 100, "periodSeconds": 15},
                {"type": "Pods", "value": 4, "periodSeconds": 15},
            ],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": options.scale_down_stabilization_s,
            "selectPolicy": "Min",
            "policies": [{"type": "Percent", "value": 20, "periodSeconds": 60}],
        },
    }


def scaled_object(plan: CapacityPlan, options: ManifestOptions) -> dict[str, Any]:
    """The KEDA ScaledObject for ``plan`` (cron windows + RPS and CPU floors)."""
    options.validate()
    tz = ZoneInfo(options.cron_timezone)
    policy = plan.policy
    triggers: list[dict[str, Any]] = []
    for i, window in enumerate(plan.windows()):
        if window.replicas <= policy.min_replicas:
            continue  # the floor already covers it
        triggers.append(
            {
                "type": "cron",
                "name": f"plan-{i:03d}",
                "metadata": {
                    "timezone": options.cron_timezone,
                    "start": _cron(window.request_at, tz),
                    "end": _cron(window.end, tz),
                    "desiredReplicas": str(window.replicas),
                },
            }
        )
    for i, event in enumerate(plan.events):
        if event.replicas is None or event.replicas <= policy.min_replicas:
            continue  # no uplift known (nothing to pre-scale for), or the floor already covers it
        triggers.append(
            {
                "type": "cron",
                "name": f"event-{_dns_fragment(event.kind)}-{i:03d}",
                "metadata": {
                    "timezone": options.cron_timezone,
                    "start": _cron(event.request_at, tz),
                    "end": _cron(event.end, tz),
                    "desiredReplicas": str(event.replicas),
                },
            }
        )
    endpoint = options.planner_endpoint
    if endpoint is not None:
        triggers.append(
            {
                "type": "metrics-api",
                "name": "predictive-planner",
                "metricType": "AverageValue",
                # one call per polling interval, not one per HPA sync as well (the answer changes by the minute)
                "useCachedMetrics": True,
                "metadata": {
                    "url": endpoint,
                    "valueLocation": "desired_replicas",
                    "targetValue": "1",
                    "authMode": "bearer",
                },
                "authenticationRef": {"name": options.planner_auth},
            }
        )
    rps_per_replica = policy.capacity_per_minute / 60.0 * policy.target_utilization
    triggers.append(
        {
            "type": "prometheus",
            "name": "reactive-rps",
            "metricType": "AverageValue",
            "metadata": {
                "serverAddress": options.prometheus_url,
                "query": options.rps_query,
                "threshold": f"{rps_per_replica:.3f}".rstrip("0").rstrip("."),
            },
        }
    )
    triggers.append(
        {
            "type": "cpu",
            "name": "reactive-cpu",
            "metricType": "Utilization",
            "metadata": {"value": str(options.cpu_utilization)},
        }
    )
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {
            "name": f"{options.deployment}-capacity",
            "namespace": options.namespace,
            "labels": _labels(options),
            "annotations": {"shopfloor.io/plan-generated-at": plan.generated_at.isoformat()},
        },
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": options.deployment},
            "pollingInterval": options.polling_interval_s,
            "cooldownPeriod": options.cooldown_s,
            "minReplicaCount": policy.min_replicas,
            "maxReplicaCount": policy.max_replicas,
            "fallback": {"failureThreshold": 3, "replicas": max(plan.peak_replicas, policy.min_replicas)},
            "advanced": {
                "restoreToOriginalReplicaCount": False,
                "horizontalPodAutoscalerConfig": {
                    "name": f"keda-hpa-{options.deployment}-capacity",
                    "behavior": _behavior(options),
                },
            },
            "triggers": triggers,
        },
    }


def trigger_authentication(options: ManifestOptions) -> dict[str, Any] | None:
    """The KEDA TriggerAuthentication for the planner trigger (``None`` without one). The token it reads is a
    ``scaler``-scoped key: ``kubectl -n <namespace> create secret generic <planner_auth>
    --from-literal=token=$(shopfloor keys create --scope scaler --name keda)``."""
    options.validate()
    if options.planner_endpoint is None:
        return None
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": {"name": options.planner_auth, "namespace": options.namespace, "labels": _labels(options)},
        "spec": {"secretTargetRef": [{"parameter": "token", "name": options.planner_auth, "key": "token"}]},
    }


def hpa_fallback(plan: CapacityPlan, options: ManifestOptions) -> dict[str, Any]:
    """An autoscaling/v2 HPA for clusters without KEDA: CPU target tracking, floor = the plan's peak."""
    options.validate()
    policy = plan.policy
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {
            "name": f"{options.deployment}-fallback",
            "namespace": options.namespace,
            "labels": _labels(options),
            "annotations": {"shopfloor.io/plan-generated-at": plan.generated_at.isoformat()},
        },
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": options.deployment},
            "minReplicas": min(max(plan.peak_replicas, policy.min_replicas), policy.max_replicas),
            "maxReplicas": policy.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": options.cpu_utilization},
                    },
                }
            ],
            "behavior": _behavior(options),
        },
    }


def write_manifests(plan: CapacityPlan, options: ManifestOptions, out_dir: str | Path) -> list[Path]:
    """Write ``scaledobject.yaml`` and ``hpa-fallback.yaml`` into ``out_dir``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "scaledobject.yaml": scaled_object(plan, options),
        "hpa-fallback.yaml": hpa_fallback(plan, options),
    }
    auth = trigger_authentication(options)
    if auth is not None:
        files["triggerauthentication.yaml"] = auth
    written = []
    for name, doc in files.items():
        path = out / name
        header = (
            "# Generated by `shopfloor capacity plan`. "
            + ("Apply this OR hpa-fallback.yaml, not both.\n" if name.startswith("scaled") else
               "Apply with scaledobject.yaml; its Secret (key `token`) holds a `scaler`-scoped API key.\n"
               if name.startswith("trigger") else
               "Only for clusters without KEDA; do not apply together with scaledobject.yaml.\n")
        )
        path.write_text(header + yaml.safe_dump(doc, sort_keys=False))
        written.append(path)
    return written
