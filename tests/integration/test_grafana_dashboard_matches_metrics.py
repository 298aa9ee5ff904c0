"""The Grafana dashboard we ship (deploy/grafana/shopfloor.json) queries only what the app and the worker expose.

A live app (the real container, its /metrics route) and a live worker (its metrics port, as
``SHOPFLOOR_WORKER_METRICS_PORT`` serves it) are driven through checkouts, a promise, storefront beacons and
fulfillment events, so the lazily created label sets appear. Every metric name in the dashboard's PromQL must then
be a series one of them exposes (counters as ``_total``, histograms as ``_bucket``/``_sum``/``_count``, the way
prometheus_client names them), every label it groups or matches on must be one the metric carries, and every
label value it matches exactly must be one the code emits. Renaming a metric, a label or an outcome in the code
without the dashboard fails here."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "shopfloor.json"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)

# --- a small PromQL reader ----------------------------------------------------------------------------------------

AGGREGATORS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
               "quantile", "limitk", "limit_ratio"}
LABEL_KEEPING_AGGREGATORS = {"topk", "bottomk", "limitk", "limit_ratio"}
FUNCTIONS = {
    "abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh", "avg_over_time", "ceil",
    "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh", "count_over_time", "day_of_month", "day_of_week",
    "day_of_year", "days_in_month", "deg", "delta", "deriv", "double_exponential_smoothing", "exp", "floor",
    "histogram_avg", "histogram_count", "histogram_fraction", "histogram_quantile", "histogram_stddev",
    "histogram_stdvar", "histogram_sum", "holt_winters", "hour", "idelta", "increase", "irate", "label_join",
    "label_replace", "last_over_time", "ln", "log10", "log2", "mad_over_time", "max_over_time", "min_over_time",
    "minute", "month", "pi", "predict_linear", "present_over_time", "quantile_over_time", "rad", "rate", "resets",
    "round", "scalar", "sgn", "sin", "sinh", "sort", "sort_by_label", "sort_by_label_desc", "sort_desc", "sqrt",
    "stddev_over_time", "stdvar_over_time", "sum_over_time", "tan", "tanh", "time", "timestamp", "vector", "year",
}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset",
            "atan2", "inf", "nan", "start", "end"}
_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`)|(?P<range>\[[^\]]*\])'
                    r'|(?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)'
                    r'|(?P<op>=~|!~|!=|==|>=|<=|[-+*/%^=<>(){},@]))')


@dataclass
class Selector:
    metric: str
    matchers: list[tuple[str, str, str]] = field(default_factory=list)  # (label, op, value)


@dataclass
class Query:
    expr: str
    selectors: list[Selector]
    grouping: list[tuple[str, list[str], list[str]]]  # (by|without|on|..., labels, metrics in scope)
    result_labels: set[str] | None  # labels a `sum by (...)` keeps (None: whatever the series carry)


def _tokens(expr: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    expr = expr.rstrip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"cannot read PromQL at {pos}: {expr[pos:pos + 20]!r} in {expr!r}")
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _close(tokens, i: int, open_: str, close: str) -> int:
    depth = 0
    for j in range(i, len(tokens)):
        if tokens[j] == ("op", open_):
            depth += 1
        elif tokens[j] == ("op", close):
            depth -= 1
            if depth == 0:
                return j
    raise ValueError(f"unbalanced {open_}{close}")


def _label_list(tokens, i: int) -> tuple[list[str], int]:
    """Labels of ``( a, b )`` starting at ``tokens[i] == '('``; returns them and the index of ``)``."""
    j = _close(tokens, i, "(", ")")
    return [v for k, v in tokens[i + 1:j] if k in ("ident", "str")], j


def parse_promql(expr: str) -> Query:
    """Metric selectors (with their matchers), grouping clauses (with the metrics each one applies to) and the
    labels the outermost label-dropping aggregation keeps. Enough PromQL for dashboards, not a full parser."""
    tokens = _tokens(expr)
    selectors: list[tuple[int, Selector]] = []
    groupings: list[tuple[str, list[str], tuple[int, int]]] = []
    dropping_aggregations = 0
    kept: set[str] = set()
    i = 0
    while i < len(tokens):
        kind, value = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ("", "")
        if kind == "ident" and value in AGGREGATORS:
            # sum by (x) (body)  |  sum (body) by (x)  |  sum (body)
            j, labels, mode = i + 1, [], None
            if nxt[0] == "ident" and nxt[1] in ("by", "without"):
                mode = nxt[1]
                labels, j = _label_list(tokens, i + 2)
                j += 1
            body_end = _close(tokens, j, "(", ")")
            if mode is None and body_end + 1 < len(tokens) and tokens[body_end + 1][1] in ("by", "without"):
                mode = tokens[body_end + 1][1]
                labels, _ = _label_list(tokens, body_end + 2)
            if mode is not None:
                groupings.append((mode, labels, (j, body_end)))
            if value not in LABEL_KEEPING_AGGREGATORS:
                dropping_aggregations += 1
                if mode == "by":
                    kept |= set(labels)
            i += 1
            continue
        if kind == "ident" and value in ("on", "ignoring", "group_left", "group_right") and nxt == ("op", "("):
            labels, j = _label_list(tokens, i + 1)
            groupings.append((value, labels, (0, len(tokens))))
            i = j + 1
            continue
        if kind == "ident" and value in ("by", "without") and nxt == ("op", "("):  # handled with its aggregation
            i = _close(tokens, i + 1, "(", ")") + 1
            continue
        if kind == "ident" and value == "offset":
            i += 2
            continue
        if kind == "ident" and nxt != ("op", "(") and value not in KEYWORDS and value not in FUNCTIONS \
                and value not in AGGREGATORS:
            sel = Selector(value)
            if nxt == ("op", "{"):
                end = _close(tokens, i + 1, "{", "}")
                sel.matchers = _matchers(tokens[i + 2:end])
                i = end
            selectors.append((i, sel))
        elif kind == "op" and value == "{" and (i == 0 or tokens[i - 1][0] != "ident"):  # {__name__="..."}
            end = _close(tokens, i, "{", "}")
            matchers = _matchers(tokens[i + 1:end])
            names = [v for label, op, v in matchers if label == "__name__" and op == "="]
            assert names, f"a selector without a metric name in {expr!r}"
            selectors.append((i, Selector(names[0], [m for m in matchers if m[0] != "__name__"])))
            i = end
        i += 1
    grouping = [(mode, labels, [s.metric for pos, s in selectors if lo <= pos <= hi])
                for mode, labels, (lo, hi) in groupings]
    return Query(expr, [s for _, s in selectors], grouping, kept if dropping_aggregations else None)


def _matchers(tokens) -> list[tuple[str, str, str]]:
    out, i = [], 0
    while i < len(tokens):
        if tokens[i][0] == "ident":
            label, op, raw = tokens[i][1], tokens[i + 1][1], tokens[i + 2][1]
            out.append((label, op, json.loads(raw) if raw.startswith('"') else raw[1:-1]))
            i += 3
        else:
            i += 1
    return out


def test_the_promql_reader_finds_metrics_labels_and_values():
    q = parse_promql('sum by (processor) (rate(a_total{operation="authorize",outcome="approved"}[5m])) '
                     '/ sum(rate(b_total[$__rate_interval])) by (processor)')
    assert [s.metric for s in q.selectors] == ["a_total", "b_total"]
    assert q.selectors[0].matchers == [("operation", "=", "authorize"), ("outcome", "=", "approved")]
    assert q.grouping == [("by", ["processor"], ["a_total"]), ("by", ["processor"], ["b_total"])]
    assert q.result_labels == {"processor"}
    q = parse_promql('histogram_quantile(0.95, sum by (le, route) (rate(x_seconds_bucket{status=~"5.."}[5m])))')
    assert [s.metric for s in q.selectors] == ["x_seconds_bucket"] and q.grouping[0][1] == ["le", "route"]
    q = parse_promql("topk(10, g)")
    assert [s.metric for s in q.selectors] == ["g"] and q.result_labels is None
    assert [s.metric for s in parse_promql('60 * {__name__="n_total", k="v"}').selectors] == ["n_total"]


# --- the dashboard -----------------------------------------------------------------------------------------------


def _dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def _panels(panels: list[dict]):
    """Every panel, rows' collapsed panels included."""
    for p in panels:
        yield p
        yield from _panels(p.get("panels") or [])


def _queries(dash: dict) -> list[tuple[str, Query, str]]:
    """(where, parsed query, legendFormat) for every target expression and every templating query."""
    out = []
    for p in _panels(dash.get("panels", [])):
        for t in p.get("targets") or []:
            if t.get("expr"):
                out.append((f"panel {p.get('id')} {p.get('title')!r} {t.get('refId')}", parse_promql(t["expr"]),
                            t.get("legendFormat", "")))
    for var in (dash.get("templating") or {}).get("list", []):
        if var.get("type") != "query":
            continue
        q = var.get("query")
        q = q.get("query", "") if isinstance(q, dict) else q or ""
        where = f"variable {var.get('name')!r}"
        m = re.fullmatch(r"\s*label_values\(\s*(.+?)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", q)
        if m:
            sel = parse_promql(m.group(1))
            sel.grouping.append(("label_values", [m.group(2)], [s.metric for s in sel.selectors]))
            out.append((where, sel, ""))
        elif (m := re.fullmatch(r"\s*query_result\((.+)\)\s*", q)) is not None:
            out.append((where, parse_promql(m.group(1)), ""))
        elif (m := re.fullmatch(r"\s*metrics\((.*)\)\s*", q)) is None and q.strip():
            out.append((where, parse_promql(q), ""))
    return out


# --- the live app and worker -------------------------------------------------------------------------------------


@dataclass
class Series:
    family: str
    labels: set[str]
    values: dict[str, set[str]]  # label -> values seen in samples
    samples: int = 0


def _series(texts: list[str], declared: dict[str, set[str]]) -> dict[str, Series]:
    """Series name -> what it carries, over several /metrics bodies. A family with no samples yet (a labelled
    counter nothing incremented) still exposes its series names with its declared labels."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
                "summary": ("", "_sum", "_count", "_created"), "gauge": ("",), "info": ("_info",),
                "gaugehistogram": ("_bucket", "_gsum", "_gcount")}
    out: dict[str, Series] = {}
    for text in texts:
        for fam in text_string_to_metric_families(text):
            for suffix in suffixes.get(fam.type, ("",)):
                name = fam.name + suffix
                s = out.setdefault(name, Series(fam.name, set(declared.get(fam.name, ())), {}))
                if suffix == "_bucket":
                    s.labels.add("le")
            for sample in fam.samples:
                s = out.setdefault(sample.name, Series(fam.name, set(declared.get(fam.name, ())), {}))
                s.labels |= set(sample.labels)
                s.samples += 1
                for k, v in sample.labels.items():
                    s.values.setdefault(k, set()).add(v)
    return out


def _declared_labels(registry, collectors=()) -> dict[str, set[str]]:
    """Label names each family was declared with (prometheus_client keeps them on the metric objects)."""
    out: dict[str, set[str]] = {}
    for collector in {id(c): c for c in registry._names_to_collectors.values()}.values():  # noqa: SLF001
        name, labels = getattr(collector, "_name", None), getattr(collector, "_labelnames", None)
        if name and labels is not None:
            out[name] = set(labels)
    for collector in collectors:
        for fam in collector.collect():
            out.setdefault(fam.name, set()).update(getattr(fam, "_labelnames", ()))
    return out


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """/metrics of a served app after a few checkouts, a promise, beacons and fulfillment events, and the worker's
    metrics port after it delivered the orders' events (confirmations, captures, handoffs)."""
    from shopfloor.api.app import create_app
    from shopfloor.api.routes.promise import EVENTS_EXAMPLES
    from shopfloor.bootstrap import build_container, build_worker
    from shopfloor.cli.core_cmd import _serve_worker_metrics
    from shopfloor.config import Settings
    from shopfloor.domain.clock import FixedClock
    from shopfloor.runtime import free_port
    from shopfloor.store.migrate import upgrade_database
    from tests.support.store import new_key, seed

    tmp = tmp_path_factory.mktemp("dashboard")
    url = f"sqlite:///{tmp / 'shop.db'}"
    upgrade_database(url)
    clock = FixedClock(NOW)
    with pytest.MonkeyPatch.context() as mp:
        for name in ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir"):
            mp.delenv(name, raising=False)
        api = build_container(Settings(database_url=url, data_dir=str(tmp / "var")), clock=clock)
        seed(api.engine, {"w1": ("us-west", "US", ["9"]), "gb-south": ("gb", "GB", ["EC"])},
             {"A1": 1299, "B1": 500, "85123A": 700}, {("A1", "w1"): 50, ("B1", "w1"): 0, ("85123A", "gb-south"): 9})
        _, shop = new_key(api.engine, "storefront")
        _, ingest = new_key(api.engine, "ingest")
        shop_auth = {"Authorization": f"Bearer {shop}"}

        def checkout(sku: str) -> dict:
            return {"lines": [{"sku": sku, "qty": 1}], "ship_to": {"country": "US", "postal_code": "94107"},
                    "payment": {"token": "tok_ok"}}

        with TestClient(create_app(api)) as client:
            statuses = [client.post("/v1/checkouts", json=checkout(sku),
                                    headers={**shop_auth, "Idempotency-Key": f"dash-{i}"}).status_code
                        for i, sku in enumerate(("A1", "A1", "B1"))]
            assert statuses == [201, 201, 409]
            r = client.get("/v1/promise", params={"sku": "A1", "country": "US", "postal_code": "94107"},
                           headers=shop_auth)
            assert r.status_code == 200, r.text
            r = client.post("/v1/events/storefront", headers=shop_auth, json={"events": [
                {"type": "page_view", "session": "s1", "page_load_ms": 420},
                {"type": "product_view", "sku": "A1", "session": "s1", "page_load_ms": 380},
                {"type": "add_to_cart", "sku": "A1", "session": "s1"}]})
            assert r.status_code == 202, r.text
            events = next(iter(EVENTS_EXAMPLES.values()))["value"]
            r = client.post("/v1/fulfillment/events", json=events, headers={"Authorization": f"Bearer {ingest}"})
            assert r.status_code == 200, r.text

            # The worker is its own process with its own registry: a container of its own, its metrics port.
            port = free_port()
            worker_container = build_container(
                Settings(database_url=url, data_dir=str(tmp / "var"), worker_metrics_port=port,
                         worker_metrics_host="127.0.0.1"), clock=clock)
            clock.advance(minutes=2)  # past the inline-payment grace: the worker takes the orders' events over
            worker = build_worker(worker_container)
            server = _serve_worker_metrics(worker_container)
            try:
                assert worker.drain() > 0
                worker_text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
            finally:
                server.shutdown()
                worker.close()
            api_text = client.get("/metrics").text
        worker_registry = worker_container.services["metrics.registry"]
        declared = _declared_labels(worker_registry)
        declared.update(_declared_labels(api.services["metrics.registry"], api.services.get("metrics.collectors", ())))
        worker_container.close()
    return {"api": api_text, "worker": worker_text, "series": _series([api_text, worker_text], declared)}


def test_the_live_app_and_worker_expose_the_funnel(live):
    """The fixture drove what it meant to: the counters the dashboard's outcome matchers rely on have samples."""
    s = live["series"]
    assert s["shopfloor_checkout_attempts_total"].values["outcome"] >= {"accepted", "out_of_stock"}
    assert "shopfloor_order_confirmation_seconds_count" in {f.name for fam in text_string_to_metric_families(
        live["worker"]) for f in fam.samples}
    assert s["shopfloor_warehouse_handoffs_total"].values.get("warehouse") == {"w1"}
    assert "shopfloor_checkout_attempts_total" in live["worker"]  # the worker's own registry, served on its port


def test_every_metric_the_dashboard_queries_exists(live):
    series = live["series"]
    queries = _queries(_dashboard())
    assert len(queries) >= 20
    missing = sorted({(where, s.metric) for where, q, _ in queries for s in q.selectors if s.metric not in series})
    assert not missing, f"the dashboard queries series nobody exposes: {missing}"


def test_every_label_the_dashboard_groups_or_matches_on_is_carried_by_its_metric(live):
    series = live["series"]
    wrong = []
    for where, q, legend in _queries(_dashboard()):
        for s in q.selectors:
            carried = series[s.metric].labels if s.metric in series else set()
            wrong += [(where, s.metric, label) for label, _, _ in s.matchers if label not in carried]
        for mode, labels, metrics in q.grouping:
            for metric in metrics:
                carried = series[metric].labels if metric in series else set()
                wrong += [(where, f"{mode} ({metric})", label) for label in labels if label not in carried]
        legend_labels = set(re.findall(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}", legend))
        if q.result_labels is not None:  # after `sum by (...)` only those labels are left to show
            allowed = q.result_labels
        else:
            allowed = set().union(*(series[s.metric].labels for s in q.selectors if s.metric in series))
        wrong += [(where, "legendFormat", label) for label in legend_labels - allowed]
    assert not wrong, f"labels the metrics do not carry: {wrong}"


def test_every_label_value_the_dashboard_matches_exactly_is_one_the_code_emits(live):
    """``{outcome="ok"}`` on a counter whose outcomes are accepted/declined/... is an empty panel, not an error."""
    series = live["series"]
    wrong = []
    for where, q, _ in _queries(_dashboard()):
        for s in q.selectors:
            for label, op, value in s.matchers:
                if op in ("=", "!=") and value not in series[s.metric].values.get(label, set()):
                    wrong.append((where, s.metric, f'{label}{op}"{value}"',
                                  sorted(series[s.metric].values.get(label, set()))))
    assert not wrong, f"label values never emitted (seen values last): {wrong}"


def test_every_counter_and_histogram_the_dashboard_draws_is_fed_by_the_path_it_counts(live):
    """After checkouts, a promise, beacons, fulfillment events and the worker's deliveries, every counter and
    histogram series a panel draws has samples (the scrape-time analytics gauges depend on the data instead)."""
    series = live["series"]
    drawn = {s.metric for _, q, _ in _queries(_dashboard()) for s in q.selectors
             if s.metric.endswith(("_total", "_bucket", "_sum", "_count"))}
    empty = {m for m in drawn if series[m].samples == 0}
    assert not empty, f"drawn but never fed (an empty panel in production): {sorted(empty)}"


def test_fulfillment_events_ingested_are_counted_by_type(live):
    """The events the live app was sent are counted once each, under their own type."""
    assert live["series"]["shopfloor_fulfillment_events_total"].values.get("type")


# --- the dashboard is a Grafana dashboard ------------------------------------------------------------------------

UNITS = {"short", "none", "percent", "percentunit", "ns", "µs", "ms", "s", "m", "h", "d", "dtdurations",
         "ops", "reqps", "rps", "cps", "opm", "reqpm", "rpm", "cpm", "bytes", "decbytes", "bits", "Bps", "currencyUSD"}
PER_SECOND = {"ops", "reqps", "rps", "cps"}
PER_MINUTE = {"opm", "reqpm", "rpm", "cpm"}


def test_the_dashboard_is_valid_grafana_json_with_titles_units_and_a_layout():
    dash = _dashboard()
    assert isinstance(dash.get("schemaVersion"), int) and dash["schemaVersion"] >= 36
    assert dash.get("title") and dash.get("uid") and isinstance(dash.get("panels"), list)
    variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    panels = list(_panels(dash["panels"]))
    ids = [p.get("id") for p in panels]
    assert all(isinstance(i, int) for i in ids) and len(ids) == len(set(ids)), ids
    boxes = []
    for p in panels:
        where = f"panel {p.get('id')}"
        assert p.get("type") and p.get("title", "").strip(), where
        pos = p.get("gridPos")
        assert isinstance(pos, dict) and all(isinstance(pos.get(k), int) for k in "hwxy"), where
        assert pos["w"] > 0 and pos["h"] > 0 and pos["x"] >= 0 and pos["y"] >= 0 and pos["x"] + pos["w"] <= 24, where
        if p["type"] == "row":
            continue
        boxes.append((p["id"], pos))
        assert p.get("datasource", {}).get("uid") == "${datasource}", where
        targets = p.get("targets") or []
        assert targets and len({t["refId"] for t in targets}) == len(targets), where
        for t in targets:
            assert t.get("expr", "").strip() and t.get("datasource", {}).get("uid") == "${datasource}", where
        unit = (p.get("fieldConfig") or {}).get("defaults", {}).get("unit")
        assert unit in UNITS, f"{where}: unit {unit!r}"
        exprs = [t["expr"] for t in targets]
        if all(e.startswith("histogram_quantile(") and "_seconds_bucket" in e for e in exprs):
            assert unit == "s", f"{where}: quantiles of a _seconds histogram are seconds, not {unit!r}"
        elif all(re.match(r"^60 \* sum\b.*\brate\(", e) and "/" not in e for e in exprs):
            assert unit in PER_MINUTE, f"{where}: 60 x a rate is per minute, not {unit!r}"
        elif all(re.match(r"^sum\b.*\brate\(", e) and " / " not in e for e in exprs):
            assert unit in PER_SECOND, f"{where}: a rate is per second, not {unit!r}"
        elif all(re.search(r"\)\s*/\s*sum", e) for e in exprs):
            assert unit in ("percentunit", "percent"), f"{where}: a ratio, not {unit!r}"
    for n, (a, pa) in enumerate(boxes):  # no two panels on the same cells
        for b, pb in boxes[n + 1:]:
            overlap = (pa["x"] < pb["x"] + pb["w"] and pb["x"] < pa["x"] + pa["w"]
                       and pa["y"] < pb["y"] + pb["h"] and pb["y"] < pa["y"] + pa["h"])
            assert not overlap, f"panels {a} and {b} overlap"
