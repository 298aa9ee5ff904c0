"""Fulfillment and returns analytics on a store of 1 million order lines: the SQL report versus scanning in Python.

    PYTHONPATH=src python bench/fulfillment_analytics.py [--lines 1000000] [--days 30] [--runs 5]
        [--baseline-runs 3] [--backends sqlite,postgresql] [--postgres-url postgresql://postgres@127.0.0.1/postgres]

The store (built fresh, not timed): a year of orders (1-4 lines each, 8 % split across two warehouses, 3 %
cancelled) over 5 warehouses and 5,000 SKUs; per order a packed, handed-to-carrier and delivered event (transit by
destination zone); returns on about 5 % of lines with reasons; lines refused for stock; stock rows with six
receipts each. Schema and indexes come from the project's migrations; statistics are gathered (ANALYZE).

Measured, per backend: ``SqlFulfillmentAnalytics.report`` for the last ``--days`` days (median of ``--runs`` after
one warm-up; ``--parallel`` connections for its heavy queries), the same over the whole year (one run, for scale),
and the baseline in the same run: the same measures
computed in Python after reading every order, line, event, receipt and refusal (median of ``--baseline-runs``),
and the CPU seconds per report (median of ``--runs``; on PostgreSQL the client's plus the server backends', read
from /proc with parallel workers off, so the server must run on this machine).
Both results are compared number by number, so the baseline is the same work, not an easier one. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

UNTIL = datetime(2026, 1, 1, tzinfo=timezone.utc)
START = UNTIL - timedelta(days=365)
WAREHOUSES = [f"w{i}" for i in range(5)]
ZONES = [f"Z{i}" for i in range(8)]
REASONS = ["fit", "quality", "not_as_described", "damaged", "late", "other"]
REASON_W = [30, 20, 15, 15, 10, 10]


# ---------------------------------------------------------------------------------------------------- the store
def generate(lines_wanted: int, n_skus: int, seed: int = 7) -> dict[str, list[tuple]]:
    rng = random.Random(seed)
    span_s = (UNTIL - START).total_seconds()
    skus = [f"S{i:05d}" for i in range(n_skus)]
    orders, lines, events, refusals, receipts, stock = [], [], [], [], [], []
    n_lines = 0
    k = 0
    while n_lines < lines_wanted:
        k += 1
        oid = f"o{k:08d}"
        created = START + timedelta(seconds=rng.random() * span_s)
        status = "cancelled" if rng.random() < 0.03 else "captured"
        n = min(rng.randint(1, 4), lines_wanted - n_lines)
        home = rng.choice(WAREHOUSES)
        split = n > 1 and rng.random() < 0.08
        other = rng.choice([w for w in WAREHOUSES if w != home])
        orders.append((oid, status, 1 if split else 0, created))
        for i in range(1, n + 1):
            wh = other if split and i == n else home
            sku = skus[min(int(rng.paretovariate(1.2)) - 1, n_skus - 1) if rng.random() < 0.5
                       else rng.randrange(n_skus)]
            qty = rng.randint(1, 3)
            lines.append((oid, i, sku, wh, qty))
            n_lines += 1
            if status != "cancelled" and rng.random() < 0.05:
                at = created + timedelta(days=rng.uniform(4, 25))
                if at < UNTIL:
                    events.append((f"{oid}-r{i}", oid, "returned", at, wh, None, None, sku, rng.randint(1, qty),
                                   rng.choices(REASONS, REASON_W)[0], rng.random() < 0.6))
        if status == "cancelled":
            continue
        zone = rng.choice(ZONES)
        packed = created + timedelta(hours=1 + rng.expovariate(1 / 6))
        handed = packed + timedelta(hours=rng.expovariate(1 / 3))
        delivered = handed + timedelta(hours=24 * (1 + ZONES.index(zone) % 4) + rng.expovariate(1 / 12))
        for typ, at in (("packed", packed), ("handed_to_carrier", handed), ("delivered", delivered)):
            if at < UNTIL:
                events.append((f"{oid}-{typ[0]}", oid, typ, at, home, zone, created, None, None, None, None))
    for _ in range(lines_wanted * 3 // 100):
        refusals.append((START + timedelta(seconds=rng.random() * span_s), rng.choice(skus), rng.choice(WAREHOUSES),
                         rng.randint(2, 5), rng.randint(0, 1)))
    for sku in skus:
        for wh in WAREHOUSES:
            stock.append((sku, wh, rng.randint(0, 200)))
            arrivals = sorted((START + timedelta(seconds=rng.random() * span_s), rng.randint(20, 80))
                              for _ in range(6))
            cum = 0
            for at, qty in arrivals:  # recorded in arrival order, as record_receipt does
                cum += qty
                receipts.append((sku, wh, qty, cum, at))
    return {"orders": orders, "lines": lines, "events": events, "refusals": refusals, "receipts": receipts,
            "stock": stock, "skus": skus}


def _sqlite_ts(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def load(url: str, data: dict) -> float:
    """Write the generated rows in bulk (executemany on SQLite, COPY on PostgreSQL), build the order journeys (the
    seconds that took are returned), then ANALYZE."""
    import sqlalchemy as sa

    from shopfloor.store.engine import normalise_url

    eng = sa.create_engine(normalise_url(url))
    pg = eng.dialect.name == "postgresql"
    ts = (lambda t: t.isoformat() if t is not None else None) if pg else \
        (lambda t: _sqlite_ts(t) if t is not None else None)
    now = ts(UNTIL)
    tables = [
        ("warehouses", "id, region, country, postal_prefixes, updated_at",
         [(w, w, "GB", "[]", now) for w in WAREHOUSES]),
        ("skus", "sku, name, category, price, currency, updated_at",
         [(s, s, "c", 100, "GBP", now) for s in data["skus"]]),
        ("stock", "sku, warehouse, on_hand, reserved, updated_at", [(s, w, q, 0, now) for s, w, q in data["stock"]]),
        ("orders", "id, status, ship_to, payment, total, currency, split, created_at, updated_at",
         [(o, st, "{}", "{}", 0, "GBP", sp, ts(c), ts(c)) for o, st, sp, c in data["orders"]]),
        ("order_lines", "order_id, line_no, sku, warehouse, qty, unit_price",
         [(o, i, s, w, q, 100) for o, i, s, w, q in data["lines"]]),
        ("fulfillment_events", "event_id, order_id, type, at, warehouse, region, placed_at, sku, qty, reason, "
                               "restock, received_at",
         [(e, o, t, ts(at), w, z, ts(p), s, q, r, rs, now) for e, o, t, at, w, z, p, s, q, r, rs in data["events"]]),
        ("stock_refusals", "at, sku, warehouse, requested, available",
         [(ts(at), s, w, rq, av) for at, s, w, rq, av in data["refusals"]]),
        ("stock_receipts", "sku, warehouse, qty, cum_qty, received_at, source",
         [(s, w, q, c, ts(at), "count") for s, w, q, c, at in data["receipts"]]),
    ]
    raw = eng.raw_connection()
    try:
        cur = raw.cursor()
        for name, cols, rows in tables:
            if pg:
                with cur.copy(f"COPY {name} ({cols}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                marks = ", ".join("?" * len(cols.split(",")))
                cur.executemany(f"INSERT INTO {name} ({cols}) VALUES ({marks})", rows)
        raw.commit()
    finally:
        raw.close()
    from shopfloor.store.analytics import refresh_journeys

    t0 = time.perf_counter()
    with eng.begin() as conn:  # the journeys of the events, as the migration's backfill builds them
        refresh_journeys(conn)
    journeys_s = time.perf_counter() - t0
    with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE" if pg else "ANALYZE")
    eng.dispose()
    return journeys_s


# ------------------------------------------------------------------------------------------- the Python baseline
def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    pos = p * (len(v) - 1)
    lo = int(pos)
    frac = pos - lo
    return v[lo] + (v[lo + 1] - v[lo]) * frac if frac else v[lo]


def python_report(engine, since: datetime, until: datetime) -> dict:
    """The same measures from every row, read without a WHERE clause and computed in Python."""
    import sqlalchemy as sa

    from shopfloor.store.analytics_tables import stock_receipts, stock_refusals
    from shopfloor.store.promise_tables import fulfillment_events as fe
    from shopfloor.store.tables import order_lines, orders, stock

    h = lambda a, b: (b - a).total_seconds() / 3600.0  # noqa: E731
    inside = lambda t: t is not None and since <= t < until  # noqa: E731
    with engine.connect() as conn:
        journeys: dict[str, dict] = defaultdict(dict)
        returns: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for oid, typ, at, wh, region, country, placed, sku, qty, reason in conn.execute(sa.select(
                fe.c.order_id, fe.c.type, fe.c.at, fe.c.warehouse, fe.c.region, fe.c.country, fe.c.placed_at,
                fe.c.sku, fe.c.qty, fe.c.reason)):
            if typ == "returned":
                if inside(at):
                    returns[sku][reason] += qty
                continue
            j = journeys[oid]
            j.setdefault("wh", wh)
            j["wh"] = min(j["wh"], wh)
            z = region or country
            if z is not None:
                j["zone"] = min(j.get("zone", z), z)
            if placed is not None:
                j["start"] = min(j.get("start_p", placed), placed)
                j["start_p"] = j["start"]
            if typ in ("approved", "packed", "handed_to_carrier", "delivered"):
                j[typ] = min(j.get(typ, at), at)
        times: dict[tuple, list[float]] = defaultdict(list)
        for j in journeys.values():
            start = j.get("start_p", j.get("approved"))
            end = j.get("packed", j.get("handed_to_carrier"))
            if start is not None and inside(end):
                times[("pick_pack", j["wh"], "")].append(h(start, end))
            if j.get("packed") is not None and inside(j.get("handed_to_carrier")):
                times[("handoff_delay", j["wh"], "")].append(h(j["packed"], j["handed_to_carrier"]))
            if j.get("handed_to_carrier") is not None and inside(j.get("delivered")):
                times[("transit", j["wh"], j.get("zone", "?"))].append(h(j["handed_to_carrier"], j["delivered"]))
        placed_orders = {oid: split for oid, status, split, created in conn.execute(
            sa.select(orders.c.id, orders.c.status, orders.c.split, orders.c.created_at))
            if inside(created) and status not in ("declined", "cancelled")}
        wh_orders: dict[str, set] = defaultdict(set)
        wh_lines: dict[str, int] = defaultdict(int)
        sku_lines: dict[str, int] = defaultdict(int)
        sku_units: dict[str, int] = defaultdict(int)
        for oid, sku, wh, qty in conn.execute(sa.select(order_lines.c.order_id, order_lines.c.sku,
                                                        order_lines.c.warehouse, order_lines.c.qty)):
            if oid in placed_orders:
                wh_orders[wh].add(oid)
                wh_lines[wh] += 1
                sku_lines[sku] += 1
                sku_units[sku] += qty
        ref_sku: dict[str, int] = defaultdict(int)
        ref_wh: dict[str, int] = defaultdict(int)
        for at, sku, wh in conn.execute(sa.select(stock_refusals.c.at, stock_refusals.c.sku,
                                                  stock_refusals.c.warehouse)):
            if inside(at):
                ref_sku[sku] += 1
                if wh is not None:
                    ref_wh[wh] += 1
        on_hand = {(s, w): q for s, w, q in conn.execute(sa.select(stock.c.sku, stock.c.warehouse, stock.c.on_hand))}
        recs: dict[tuple, list] = defaultdict(list)
        for rid, s, w, q, at in conn.execute(sa.select(stock_receipts.c.cum_qty, stock_receipts.c.sku,
                                                       stock_receipts.c.warehouse, stock_receipts.c.qty,
                                                       stock_receipts.c.received_at)):
            if at <= until:
                recs[(s, w)].append((at, rid, q))
    held_sku: dict[str, list] = defaultdict(list)
    held_wh: dict[str, list] = defaultdict(list)
    for key, rows in recs.items():
        left = on_hand.get(key, 0)
        for at, _, q in sorted(rows, reverse=True):
            if left <= 0:
                break
            units = min(q, left)
            left -= units
            age = h(at, until) / 24.0
            held_sku[key[0]].append((age, units))
            held_wh[key[1]].append((age, units))

    def median_unit(items):
        total = sum(u for _, u in items)
        upto = 0
        for age, u in sorted(items):
            upto += u
            if 2 * upto >= total:
                return age
        return None

    rate = lambda a, b: a / b if b else None  # noqa: E731
    out = {"warehouses": {}, "skus": {}, "lanes": {}}
    for w in sorted(set(WAREHOUSES) | set(wh_orders)):
        pp = times.get(("pick_pack", w, ""), [])
        out["warehouses"][w] = {
            "pick_pack_p50_h": _pct(pp, 0.5), "pick_pack_p90_h": _pct(pp, 0.9),
            "handoff_delay_p50_h": _pct(times.get(("handoff_delay", w, ""), []), 0.5),
            "split_shipment_rate": rate(sum(placed_orders[o] for o in wh_orders[w]), len(wh_orders[w])),
            "backorder_rate": rate(ref_wh[w], ref_wh[w] + wh_lines[w]),
            "inventory_age_p50_d": median_unit(held_wh[w]) if held_wh[w] else None}
    for (m, w, z), v in times.items():
        if m == "transit":
            out["lanes"][f"{w}|{z}"] = {"transit_p50_h": _pct(v, 0.5), "transit_p90_h": _pct(v, 0.9)}
    for s in set(sku_units) | set(returns) | set(ref_sku) | set(held_sku):
        out["skus"][s] = {"return_rate": rate(sum(returns[s].values()) if s in returns else 0, sku_units.get(s, 0)),
                          "backorder_rate": rate(ref_sku.get(s, 0), ref_sku.get(s, 0) + sku_lines.get(s, 0)),
                          "inventory_age_p50_d": median_unit(held_sku[s]) if held_sku.get(s) else None}
    return out


def sql_as_baseline_shape(report) -> dict:
    return {"warehouses": {w.warehouse: {k: getattr(w, k) for k in (
                "pick_pack_p50_h", "pick_pack_p90_h", "handoff_delay_p50_h", "split_shipment_rate",
                "backorder_rate", "inventory_age_p50_d")} for w in report.warehouses},
            "skus": {s.sku: {"return_rate": s.return_rate, "backorder_rate": s.backorder_rate,
                             "inventory_age_p50_d": s.inventory_age_p50_d} for s in report.skus},
            "lanes": {f"{lane.warehouse}|{lane.zone}": {"transit_p50_h": lane.transit_p50_h,
                                                        "transit_p90_h": lane.transit_p90_h}
                      for lane in report.lanes}}


def compare(sql: dict, py: dict) -> list[str]:
    """Differences beyond the report's rounding (4 decimals; 2 for ages in days)."""
    diffs = []
    for part in ("warehouses", "skus", "lanes"):
        if set(sql[part]) != set(py[part]):
            diffs.append(f"{part}: keys differ ({len(set(sql[part]) ^ set(py[part]))})")
            continue
        for key, measures in py[part].items():
            for name, value in measures.items():
                got = sql[part][key][name]
                tol = 0.006 if name.endswith("_d") else 0.0006
                if (got is None) != (value is None) or (value is not None and abs(got - value) > tol):
                    diffs.append(f"{part}[{key}].{name}: sql {got} python {value}")
    return diffs


# ------------------------------------------------------------------------------------------------------ running
def counted_engine(url: str):
    """An engine whose PostgreSQL backends are remembered (their pids, for reading their CPU from /proc), with
    parallel query workers off so that no work escapes the count. Returns (engine, pids)."""
    import sqlalchemy as sa

    from shopfloor.store.engine import normalise_url

    pg = url.startswith("postgresql")
    pids: list[int] = []
    eng = sa.create_engine(normalise_url(url), **(
        {"connect_args": {"options": "-c max_parallel_workers_per_gather=0"}} if pg else {}))
    if pg:
        @sa.event.listens_for(eng, "connect")
        def _pid(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("SELECT pg_backend_pid()")
            pids.append(cur.fetchone()[0])
            cur.close()
    return eng, pids


def timed(fn, runs: int) -> tuple[float, object]:
    out, times = None, []
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def _backend_cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of these (local) PostgreSQL backends so far."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def report_cpu(url: str, since: datetime, args) -> dict:
    """CPU seconds per report, median of ``--runs``: on SQLite this process's (all of the query work); on PostgreSQL
    the client's plus the server backends' that served it (read from /proc, so the server must be local), with
    parallel query workers turned off so that no work escapes the count. Wall time is measured separately (above)."""
    from shopfloor.store.analytics import SqlFulfillmentAnalytics

    eng, pids = counted_engine(url)
    analytics = SqlFulfillmentAnalytics(eng, parallel=args.parallel)
    analytics.report(since, UNTIL)  # warm-up, and opens the pooled connections
    client, server = [], []
    for _ in range(args.runs):
        c0, s0 = time.process_time(), _backend_cpu_s(pids)
        analytics.report(since, UNTIL)
        client.append(time.process_time() - c0)
        server.append(_backend_cpu_s(pids) - s0)
    eng.dispose()
    out = {"sql_report_client_cpu_s_median": round(statistics.median(client), 4)}
    if url.startswith("postgresql"):
        out["sql_report_server_cpu_s_median"] = round(statistics.median(server), 4)
        out["sql_report_cpu_s_median"] = round(statistics.median([c + s for c, s in zip(client, server)]), 4)
    else:
        out["sql_report_cpu_s_median"] = out["sql_report_client_cpu_s_median"]
    return out


def bench_backend(url: str, data: dict, args) -> dict:
    import sqlalchemy as sa

    from shopfloor.store.analytics import SqlFulfillmentAnalytics
    from shopfloor.store.engine import normalise_url
    from shopfloor.store.migrate import upgrade_database

    upgrade_database(url)
    t0 = time.perf_counter()
    journeys_s = load(url, data)
    load_s = time.perf_counter() - t0
    eng = sa.create_engine(normalise_url(url))
    analytics = SqlFulfillmentAnalytics(eng, parallel=args.parallel)
    since = UNTIL - timedelta(days=args.days)
    analytics.report(since, UNTIL)  # warm-up: statement compilation, page cache
    load_before = os.getloadavg()
    sql_s, report = timed(lambda: analytics.report(since, UNTIL), args.runs)
    cpu = report_cpu(url, since, args)
    year_s, _ = timed(lambda: analytics.report(START, UNTIL), 1)  # for scale only: one run
    py_s, py = timed(lambda: python_report(eng, since, UNTIL), args.baseline_runs)
    diffs = compare(sql_as_baseline_shape(report), py)
    eng.dispose()
    return {"dialect": eng.dialect.name, "load_s": round(load_s, 1), "journeys_backfill_s": round(journeys_s, 1),
            "load_average_before_report_runs": [round(x, 2) for x in load_before],
            "sql_report_s_median": round(sql_s, 4), **cpu, "sql_report_whole_year_s_one_run": round(year_s, 4),
            "python_scan_s_median": round(py_s, 3), "speedup_vs_python_scan": round(py_s / sql_s, 1),
            "target_s": 1.0, "met": sql_s < 1.0,
            "rows_in_window": {"warehouses": len(report.warehouses), "skus": len(report.skus),
                               "lanes": len(report.lanes)},
            "differences_vs_python": diffs[:10], "n_differences": len(diffs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--skus", type=int, default=5000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--baseline-runs", type=int, default=3)
    ap.add_argument("--parallel", type=int, default=3, help="Connections the report's heavy queries use at once (the service's default, SHOPFLOOR_ANALYTICS_PARALLEL, is 3; 1: one after another).")
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                    help="A server to create (and drop) a throwaway database on.")
    args = ap.parse_args()
    t0 = time.perf_counter()
    data = generate(args.lines, args.skus)
    gen_s = time.perf_counter() - t0
    result = {"benchmark": "fulfillment_analytics", "load_average_at_start": os.getloadavg(), "order_lines": len(data["lines"]), "orders": len(data["orders"]),
              "fulfillment_events": len(data["events"]), "stock_receipts": len(data["receipts"]),
              "stock_refusals": len(data["refusals"]), "window_days": args.days, "runs": args.runs, "parallel": args.parallel,
              "baseline_runs": args.baseline_runs, "generate_s": round(gen_s, 1), "backends": {}}
    for backend in args.backends.split(","):
        if backend == "sqlite":
            with tempfile.TemporaryDirectory(prefix="sf_bench_fa_") as tmp:
                result["backends"]["sqlite"] = bench_backend(f"sqlite:///{tmp}/bench.db", data, args)
        elif backend == "postgresql":
            import sqlalchemy as sa

            from shopfloor.store.engine import normalise_url

            name = f"sf_bench_fa_{uuid.uuid4().hex[:8]}"
            admin = sa.create_engine(normalise_url(args.postgres_url), isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            try:
                url = args.postgres_url.rsplit("/", 1)[0] + "/" + name
                result["backends"]["postgresql"] = bench_backend(url, data, args)
            finally:
                with admin.connect() as conn:
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                admin.dispose()
        print(json.dumps({"done": backend}), file=sys.stderr, flush=True)
    result["load_average_at_end"] = os.getloadavg()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
