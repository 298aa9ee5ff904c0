"""The Kubernetes manifests we generate (``shopfloor capacity plan --k8s-out``) and ship (``deploy/``) point at
things that exist: the planner trigger's URL is a route of the app that answers KEDA's bearer token with the field
``valueLocation`` names, the Prometheus trigger's query names a metric the app exports, cron triggers are valid
cron in a real time zone, and every apiVersion is the current one for its kind."""

from __future__ import annotations

import inspect
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, available_timezones

import pytest
import yaml
from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
API_VERSIONS = {
    "ScaledObject": "keda.sh/v1alpha1",
    "ScaledJob": "keda.sh/v1alpha1",
    "TriggerAuthentication": "keda.sh/v1alpha1",
    "ClusterTriggerAuthentication": "keda.sh/v1alpha1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "CronJob": "batch/v1",
    "Job": "batch/v1",
    "Service": "v1",
    "Secret": "v1",
    "ConfigMap": "v1",
    "ServiceAccount": "v1",
    "Ingress": "networking.k8s.io/v1",
    "PodDisruptionBudget": "policy/v1",
    "ServiceMonitor": "monitoring.coreos.com/v1",
    "PrometheusRule": "monitoring.coreos.com/v1",
}

# --- cron --------------------------------------------------------------------------------------------------------

_CRON_FIELDS = [("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}),
                ("month", 1, 12, {m: i for i, m in enumerate(
                    "jan feb mar apr may jun jul aug sep oct nov dec".split(), start=1)}),
                ("day of week", 0, 7, {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())})]
_DAYS_IN_MONTH = {1: 31, 2: 29, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31, 8: 31, 9: 30, 10: 31, 11: 30, 12: 31}


def cron_problem(expr: str) -> str | None:
    """Why ``expr`` is not a five-field cron expression KEDA's cron scaler accepts (None when it is), including
    a day that never comes (``30 2``: February 30th)."""
    parts = expr.split()
    if len(parts) != 5:
        return f"{len(parts)} fields, not 5"
    values: list[set[int] | None] = []
    for text, (name, low, high, names) in zip(parts, _CRON_FIELDS):
        seen: set[int] = set()
        for item in text.split(","):
            m = re.fullmatch(r"(\*|(\w+)(?:-(\w+))?)(?:/(\d+))?", item.lower())
            if m is None:
                return f"{name}: cannot read {item!r}"
            if m.group(1) == "*":
                lo, hi = low, high
            else:
                try:
                    lo = names[m.group(2)] if m.group(2) in names else int(m.group(2))
                    hi = lo if m.group(3) is None else names[m.group(3)] if m.group(3) in names else int(m.group(3))
                except ValueError:
                    return f"{name}: {item!r} is not a number"
            step = int(m.group(4) or 1)
            if not (low <= lo <= hi <= high) or step < 1:
                return f"{name}: {item!r} is outside {low}-{high}"
            seen |= set(range(lo, hi + 1, step))
        values.append(None if text == "*" else seen)
    days, months = values[2], values[3]
    if days is not None and months is not None and not any(d <= _DAYS_IN_MONTH[m] for d in days for m in months):
        return f"day {sorted(days)} never comes in month {sorted(months)}"
    return None


def test_the_cron_checker_tells_valid_from_invalid():
    for good in ("0 9 * * *", "*/15 8-18 * * mon-fri", "5 0 29 2 *", "59 23 31 12 *", "0 0 1 jan,jul 0"):
        assert cron_problem(good) is None, good
    for bad in ("0 9 * *", "60 9 * * *", "0 24 * * *", "0 9 0 * *", "0 9 30 2 *", "0 9 * 13 *", "x 9 * * *",
                "0 9 * * 8", "@daily"):
        assert cron_problem(bad) is not None, bad


# --- generated manifests -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """A migrated store with an hour of recorded traffic, the manifests `shopfloor capacity plan --k8s-out` writes
    from it (a campaign calendar, a non-UTC cron time zone), the app over the same store, and a key per scope."""
    from typer.testing import CliRunner

    from shopfloor.api.app import create_app
    from shopfloor.bootstrap import build_container
    from shopfloor.cli.main import app as cli
    from shopfloor.config import Settings
    from shopfloor.domain.clock import FixedClock
    from shopfloor.store.capacity import record_request_batch
    from shopfloor.store.engine import make_engine
    from shopfloor.store.migrate import upgrade_database
    from tests.support.store import new_key

    tmp = tmp_path_factory.mktemp("manifests")
    url = f"sqlite:///{tmp / 'shop.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    try:
        record_request_batch(engine, [{"minute": NOW - timedelta(minutes=i), "route": "/v1/promise", "count": 900}
                                      for i in range(1, 61)])
    finally:
        engine.dispose()
    calendar = tmp / "calendar.csv"
    start = NOW + timedelta(hours=1)
    calendar.write_text(f"start,end,kind,uplift\n{start.isoformat()},{(start + timedelta(hours=1)).isoformat()},"
                        "Black Friday,6\n")
    out = tmp / "k8s"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SHOPFLOOR_DATABASE_URL", url)
        mp.setenv("SHOPFLOOR_DATA_DIR", str(tmp / "var"))
        mp.setenv("SHOPFLOOR_CAPACITY_CRON_TIMEZONE", "America/Sao_Paulo")
        res = CliRunner().invoke(cli, ["capacity", "plan", "--now", NOW.isoformat(), "--capacity-rps", "5",
                                       "--events", str(calendar), "--k8s-out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    docs = {p.name: yaml.safe_load(p.read_text()) for p in sorted(out.glob("*.yaml"))}
    container = build_container(Settings(database_url=url, data_dir=str(tmp / "var")), clock=FixedClock(NOW))
    keys = {scope: {"Authorization": f"Bearer {new_key(container.engine, scope)[1]}"}
            for scope in ("scaler", "storefront", "admin")}
    with TestClient(create_app(container)) as client:
        yield {"docs": docs, "client": client, "keys": keys}


def _kind(docs: dict, kind: str) -> dict:
    [doc] = [d for d in docs.values() if d["kind"] == kind]
    return doc


def _gjson(body, path: str):
    """KEDA's ``valueLocation`` (GJSON): the dotted-path subset (``a.b``, ``a.0.b``) is what we generate."""
    for part in path.split("."):
        body = body[int(part)] if isinstance(body, list) else body[part]
    return body


def test_the_command_writes_a_scaledobject_its_triggerauthentication_and_an_hpa_with_current_api_versions(shop):
    docs = shop["docs"]
    assert set(docs) == {"scaledobject.yaml", "triggerauthentication.yaml", "hpa-fallback.yaml"}
    for name, doc in docs.items():
        assert doc["apiVersion"] == API_VERSIONS[doc["kind"]], name
        ref = doc.get("spec", {}).get("scaleTargetRef")
        if ref is not None:
            assert (ref["apiVersion"], ref["kind"]) == ("apps/v1", "Deployment"), name
    assert [d["kind"] for d in docs.values()].count("ScaledObject") == 1


def test_the_planner_trigger_polls_a_registered_get_route_on_the_port_serve_listens_on(shop):
    from shopfloor.cli.core_cmd import serve

    so = _kind(shop["docs"], "ScaledObject")
    [trigger] = [t for t in so["spec"]["triggers"] if t["type"] == "metrics-api"]
    url = urlsplit(trigger["metadata"]["url"])
    target, namespace = so["spec"]["scaleTargetRef"]["name"], so["metadata"]["namespace"]
    assert url.scheme == "http" and url.hostname == f"{target}.{namespace}.svc"
    assert url.port == inspect.signature(serve).parameters["port"].default.default  # `shopfloor serve`'s port
    client = shop["client"]
    assert "get" in client.app.openapi()["paths"].get(url.path, {}), f"{url.path} is not a GET route of the app"
    # Answered by that route template (what the request metrics label it with), not by a catch-all.
    assert client.get(url.path, headers=shop["keys"]["scaler"]).status_code == 200
    metrics = client.get("/metrics").text
    assert f'shopfloor_http_requests_total{{method="GET",route="{url.path}",status="200"}}' in metrics


def test_valuelocation_is_a_number_in_what_the_route_documents_and_returns(shop):
    from shopfloor.planning.capacity_live import LiveDecision

    so = _kind(shop["docs"], "ScaledObject")
    [trigger] = [t for t in so["spec"]["triggers"] if t["type"] == "metrics-api"]
    path, location = urlsplit(trigger["metadata"]["url"]).path, trigger["metadata"]["valueLocation"]
    # the object the route serialises
    decision = LiveDecision(NOW, 3, 3, 2, NOW - timedelta(days=8), 100)
    assert isinstance(_gjson(decision.to_dict(), location), int)
    # the response the route documents in its OpenAPI entry
    doc = shop["client"].app.openapi()["paths"][path]["get"]["responses"]["200"]
    assert isinstance(_gjson(doc["content"]["application/json"]["example"], location), int)
    # and what it answers KEDA (targetValue 1 with AverageValue: the value is the replica count itself)
    res = shop["client"].get(path, headers=shop["keys"]["scaler"])
    assert res.status_code == 200, res.text
    value = _gjson(res.json(), location)
    assert isinstance(value, int) and value >= 1
    assert trigger["metricType"] == "AverageValue" and float(trigger["metadata"]["targetValue"]) == 1.0


def test_the_trigger_authentication_sends_the_bearer_token_the_route_asks_for(shop):
    docs = shop["docs"]
    so, auth = _kind(docs, "ScaledObject"), _kind(docs, "TriggerAuthentication")
    [trigger] = [t for t in so["spec"]["triggers"] if t["type"] == "metrics-api"]
    # KEDA's metrics-api scaler in bearer mode (KEDA >= 2.13) reads the parameter `token`.
    assert trigger["metadata"]["authMode"] == "bearer"
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    assert auth["metadata"]["namespace"] == so["metadata"]["namespace"]
    assert [ref["parameter"] for ref in auth["spec"]["secretTargetRef"]] == ["token"]
    path = urlsplit(trigger["metadata"]["url"]).path
    client, keys = shop["client"], shop["keys"]
    assert client.get(path).status_code == 401  # without the Secret's token KEDA gets nothing
    assert client.get(path, headers=keys["storefront"]).status_code == 403  # a storefront key is not enough
    assert client.get(path, headers=keys["scaler"]).status_code == 200  # `keys create --scope scaler` is


def test_every_cron_trigger_is_valid_cron_in_a_real_time_zone(shop):
    so = _kind(shop["docs"], "ScaledObject")
    crons = [t for t in so["spec"]["triggers"] if t["type"] == "cron"]
    assert any(t["name"].startswith("plan-") for t in crons) and any(t["name"].startswith("event-") for t in crons)
    spec = so["spec"]
    zones = available_timezones()
    for t in crons:
        md = t["metadata"]
        assert md["timezone"] in zones and ZoneInfo(md["timezone"]), t["name"]
        assert md["timezone"] == "America/Sao_Paulo"  # the setting, not a default
        for edge in ("start", "end"):
            assert cron_problem(md[edge]) is None, (t["name"], edge, md[edge], cron_problem(md[edge]))
        assert md["start"] != md["end"], t["name"]
        assert isinstance(md["desiredReplicas"], str)
        assert spec["minReplicaCount"] < int(md["desiredReplicas"]) <= spec["maxReplicaCount"], t["name"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", t["name"]) and len(t["name"]) <= 63, t["name"]


def _exported_metric_series() -> set[str]:
    from prometheus_client import CollectorRegistry

    from shopfloor.payments import PaymentMetrics
    from shopfloor.tower.metrics import FunnelMetrics

    reg = CollectorRegistry()
    FunnelMetrics(reg)
    PaymentMetrics(reg)
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    return {fam.name + s for fam in reg.collect() for s in suffixes.get(fam.type, ("",))}


def _query_metrics(query: str) -> set[str]:
    """Metric names in a PromQL query: identifiers not called as functions, outside strings, ranges and
    `by (...)` lists, that are not keywords."""
    q = re.sub(r'"(?:\\.|[^"\\])*"', '""', query)
    q = re.sub(r"\[[^\]]*\]", "", q)
    q = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", q)
    q = re.sub(r"\{[^}]*\}", "", q)
    names = re.findall(r"\b([A-Za-z_:][A-Za-z0-9_:]*)\b(?!\s*\()", q)
    return {n for n in names if n not in {"bool", "and", "or", "unless", "offset"}}


def test_the_reactive_prometheus_trigger_of_the_default_options_queries_a_metric_the_app_exports():
    from shopfloor.planning.k8s import ManifestOptions

    used = _query_metrics(ManifestOptions().rps_query)
    assert used and used <= _exported_metric_series(), used


def test_the_reactive_prometheus_trigger_the_command_writes_queries_a_metric_the_app_exports(shop):
    so = _kind(shop["docs"], "ScaledObject")
    [trigger] = [t for t in so["spec"]["triggers"] if t["type"] == "prometheus"]
    used = _query_metrics(trigger["metadata"]["query"])
    assert used and used <= _exported_metric_series(), used


def test_the_hpa_fallback_targets_cpu_with_the_plan_as_its_floor(shop):
    hpa = _kind(shop["docs"], "HorizontalPodAutoscaler")
    so = _kind(shop["docs"], "ScaledObject")
    assert hpa["spec"]["scaleTargetRef"] == so["spec"]["scaleTargetRef"]
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    [metric] = hpa["spec"]["metrics"]
    assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
