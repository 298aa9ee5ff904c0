"""``shopfloor demo``: a fresh store with a real-data catalog, a burst of shoppers and a flash sale, then a summary.

The catalog and demand come from a small derived sample of UCI Online Retail II (CC BY 4.0, see
``data/ATTRIBUTION.md``), so the demo needs nothing outside the package.
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from ..domain.stats import percentile
from ..runtime import ServerProcess, SimulatorProcess, WorkerProcess, interrupt_on_termination, port_in_use

WAREHOUSES = {
    "gb-south": {"region": "gb-south", "country": "GB",
                 "postal_prefixes": ["E", "EC", "N", "NW", "SE", "SW", "W", "WC", "BR", "CR", "KT", "BN", "RH",
                                     "GU", "SO", "PO", "OX", "RG", "CB", "CT"]},
    "gb-north": {"region": "gb-north", "country": "GB",
                 "postal_prefixes": ["M", "L", "LS", "B", "S", "NE", "G", "EH", "BD", "HD", "WA", "YO", "NG",
                                     "DE", "ST", "CH", "PR", "BL", "AB", "DD"]},
    "de-central": {"region": "eu-central", "country": "DE", "postal_prefixes": []},
}
DESTINATIONS = [("GB", "EC1A 1BB"), ("GB", "SW1A 2AA"), ("GB", "M1 1AE"), ("GB", "LS1 4DY"), ("GB", "B1 1AA"),
                ("GB", "BN1 1AA"), ("GB", "G1 1XQ"), ("DE", "10115"), ("DE", "80331"), ("GB", "OX1 2JD")]
#: Where the demo store's pages are warmed for (most of its shoppers are British)
DEMO_COUNTRY = "GB"
FLASH_SKU, FLASH_UNITS, FLASH_BUYERS = "FLASH-001", 50, 300
SCARCE_SKU = "SCARCE-001"


#: How the replayed history's orders are split over the warehouses (``steps.seed_history`` uses the same split).
GB_SOUTH_SHARE = 0.6
#: Days of cover each seeded SKU x warehouse starts with, drawn uniformly: the demo's restock plan gets urgent,
#: routine and idle lines (most are urgent: on this lumpy wholesale demand the planner's quantile level for a
#: 0.95 fill is about 0.98, so the lead time's demand at that level is several times its mean).
COVER_DAYS = (4.0, 45.0)


def load_catalog() -> list[dict[str, Any]]:
    text = resources.files("shopfloor.demo").joinpath("data/catalog.csv").read_text()
    return list(csv.DictReader(text.splitlines()))


def load_daily_demand() -> list[dict[str, str]]:
    """The packaged UCI Online Retail II sample: one row per SKU x market x day (``sku, market, date, qty``)."""
    import gzip
    import io

    raw = resources.files("shopfloor.demo").joinpath("data/daily_demand.csv.gz").read_bytes()
    return list(csv.DictReader(io.StringIO(gzip.decompress(raw).decode())))


def load_daily_returns() -> list[dict[str, str]]:
    """The same sample's cancelled invoices (numbers starting with "C"): units per SKU x market x day
    (``sku, market, date, qty``). The source records no reason for them."""
    import gzip
    import io

    raw = resources.files("shopfloor.demo").joinpath("data/daily_returns.csv.gz").read_bytes()
    return list(csv.DictReader(io.StringIO(gzip.decompress(raw).decode())))


def recent_daily_demand(rows: list[dict[str, str]], days: int = 120) -> dict[tuple[str, str], float]:
    """Mean units per day per (sku, warehouse) over the sample's last ``days`` days, split as the history is."""
    dated = [(datetime.fromisoformat(r["date"]).date(), r) for r in rows]
    last = max(day for day, _ in dated)
    out: dict[tuple[str, str], float] = {}
    for day, r in dated:
        if (last - day).days >= days:
            continue
        qty = max(1, int(r["qty"]))
        if r["market"] == "GB":
            shares = {"gb-south": GB_SOUTH_SHARE, "gb-north": 1 - GB_SOUTH_SHARE}
        else:
            shares = {"de-central": 1.0}
        for wid, share in shares.items():
            out[(r["sku"], wid)] = out.get((r["sku"], wid), 0.0) + qty * share / days
    return out


class DemoError(RuntimeError):
    """The demo cannot start or its server failed; the message says why in one line."""


@dataclass
class DemoReport:
    url: str = ""
    db_url: str = ""
    admin_key: str = ""
    storefront_key: str = ""
    keys_file: str = ""
    orders: list[dict] = field(default_factory=list)
    refused: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    flash_sold: int = 0
    flash_refused: int = 0
    sold_out: list[str] = field(default_factory=list)
    split: int = 0
    outbox: dict = field(default_factory=dict)
    placed: list[tuple[dict, str, str]] = field(default_factory=list)  # (201 body, country, postal code)
    browsers: int = 0
    beacons: int = 0
    tower_reacted: bool = False
    fulfillment: dict = field(default_factory=dict)
    history: dict = field(default_factory=dict)
    sections: list[tuple[str, Any]] = field(default_factory=list)  # extra panels from other areas

    def p(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        return percentile(self.latencies_ms, q)


class DemoStore:
    """Talks to the running demo server over HTTP, like any storefront would."""

    def __init__(self, url: str, admin_key: str, storefront_key: str, ingest_key: str = "") -> None:
        self.url = url
        self.admin = {"Authorization": f"Bearer {admin_key}"}
        self.shop = {"Authorization": f"Bearer {storefront_key}"}
        self.ingest = {"Authorization": f"Bearer {ingest_key}"}
        self.client = httpx.Client(base_url=url, timeout=30, limits=httpx.Limits(max_connections=64))

    def put(self, path: str, body: Any) -> httpx.Response:
        r = self.client.put(path, json=body, headers=self.admin)
        r.raise_for_status()
        return r

    def beacons(self, events: list[dict]) -> bool:
        """Storefront beacons (page views, product views, carts), as the shop's pages send them."""
        for _ in range(3):
            try:
                return self.client.post("/v1/events/storefront", json={"events": events},
                                        headers=self.shop).status_code == 202
            except httpx.TransportError:
                time.sleep(0.1)
        return False

    def checkout(self, lines: list[dict], country: str, postal: str, token: str = "tok_ok",
                 email: str | None = None) -> tuple[int, dict, float]:
        ship_to = {"country": country, "postal_code": postal, **({"email": email} if email else {})}
        body = {"lines": lines, "ship_to": ship_to, "payment": {"token": token}}
        headers = {**self.shop, "Idempotency-Key": uuid.uuid4().hex}
        t0 = time.perf_counter()
        for _ in range(5):
            try:
                r = self.client.post("/v1/checkouts", json=body, headers=headers)
                return r.status_code, r.json(), (time.perf_counter() - t0) * 1000
            except httpx.TransportError:
                time.sleep(0.1)  # retry with the same key: never a second order
        return 0, {}, (time.perf_counter() - t0) * 1000


def write_keys_file(path: Path, admin_key: str, storefront_key: str, ingest_key: str) -> Path:
    """The demo's keys as shell variables (``source var/demo/keys.env``), so the README's examples run as pasted.
    Readable by the owner only: they are this store's secrets."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)  # never readable by others, not even briefly
    with os.fdopen(fd, "w") as fh:
        os.fchmod(fh.fileno(), 0o600)  # os.open's mode applies to a new file only: an earlier demo's too
        fh.write("# shopfloor demo keys for this store only; load them with: source " + str(path) + "\n"
                 f"export ADMIN={admin_key}\nexport SHOP={storefront_key}\nexport INGEST={ingest_key}\n")
    return path


def seed_store(store: DemoStore, catalog: list[dict], rng: random.Random) -> None:
    daily = recent_daily_demand(load_daily_demand())
    for wid, w in WAREHOUSES.items():
        store.put(f"/v1/warehouses/{wid}", w)
    for item in catalog:
        store.put(f"/v1/skus/{item['sku']}", {"name": item["name"], "category": item["category"],
                                                "price": int(item["price"]), "currency": "GBP"})
        for wid in WAREHOUSES:
            # Stock in proportion to what the replayed history sold there: COVER_DAYS of its recent daily rate
            # (a few units where it sold nothing lately), so the demo's restock plan has a realistic mix of
            # urgent, routine and idle lines.
            rate = daily.get((item["sku"], wid), 0.0)
            units = int(rate * rng.uniform(*COVER_DAYS)) if rate > 0 else rng.randint(0, 5)
            store.put(f"/v1/stock/{item['sku']}/{wid}", {"on_hand": units})
    store.put(f"/v1/skus/{FLASH_SKU}", {"name": "Limited Edition Lantern (flash sale)", "category": "lighting",
                                         "price": 1999, "currency": "GBP"})
    store.put(f"/v1/stock/{FLASH_SKU}/gb-south", {"on_hand": FLASH_UNITS})
    store.put(f"/v1/skus/{SCARCE_SKU}", {"name": "Hand-Thrown Cake Stand", "category": "kitchen", "price": 3499,
                                          "currency": "GBP"})
    for wid in ("gb-south", "gb-north"):
        store.put(f"/v1/stock/{SCARCE_SKU}/{wid}", {"on_hand": 4})


#: Window shoppers per buyer: most visits end without a purchase.
BROWSERS_PER_BUYER = 3


def browse(rng: random.Random, catalog: list[dict], weights: list[int], skus: list[str] | None, buys: bool,
           now: datetime) -> list[dict]:
    """One visit's storefront beacons: a few pages, product pages (the basket's SKUs for a buyer), and for a
    buyer the cart and the checkout page. Page loads are drawn around 400 ms with a long tail."""
    session = uuid.uuid4().hex[:16]
    viewed = skus or [c["sku"] for c in rng.choices(catalog, weights=weights, k=rng.randint(1, 3))]
    events = [{"type": "page_view", "session": session, "page_load_ms": round(rng.lognormvariate(6.0, 0.4))}
              for _ in range(rng.randint(1, 4))]
    events += [{"type": "product_view", "sku": sku, "session": session,
                "page_load_ms": round(rng.lognormvariate(6.1, 0.4))} for sku in viewed]
    if buys or rng.random() < 0.15:
        events += [{"type": "add_to_cart", "sku": sku, "session": session} for sku in viewed[:1 if not buys else None]]
    if buys:
        events.append({"type": "checkout_started", "session": session,
                       "page_load_ms": round(rng.lognormvariate(6.2, 0.4))})
    for e in events:
        e["at"] = now.isoformat()
    return events


def run_shoppers(store: DemoStore, catalog: list[dict], report: DemoReport, n: int, rng: random.Random,
                 progress: Progress) -> None:
    """``n`` buyers browse (beacons, a promise lookup) and check out; ``BROWSERS_PER_BUYER`` times as many window
    shoppers browse and leave, their beacons batched as a storefront's beacon collector would send them."""
    weights = [int(c["invoices"]) for c in catalog]
    lock = threading.Lock()
    baskets = []
    for i in range(n):
        k = rng.choice([1, 1, 1, 2, 3])
        lines = {c["sku"]: rng.randint(1, 3) for c in rng.choices(catalog, weights=weights, k=k)}
        if i % 25 == 0:
            lines = {SCARCE_SKU: 5}  # more than any one warehouse holds: a split shipment
        dest = rng.choice(DESTINATIONS)
        visit = browse(rng, catalog, weights, list(lines), True, datetime.now(timezone.utc))
        baskets.append(([{"sku": s, "qty": q} for s, q in lines.items()], dest, visit))
    browsers = n * BROWSERS_PER_BUYER
    window = [e for _ in range(browsers)
              for e in browse(rng, catalog, weights, None, False, datetime.now(timezone.utc))]
    task = progress.add_task("shoppers", total=n + browsers)

    def buy(numbered):
        i, (lines, (country, postal), visit) = numbered
        sent = store.beacons(visit)
        store.client.get("/v1/promise", params={"sku": lines[0]["sku"], "qty": lines[0]["qty"], "country": country,
                                                "postal_code": postal})
        # each shopper pays with their own card: one card behind hundreds of orders is what fraud screening holds
        status, body, ms = store.checkout(lines, country, postal, token=f"tok_shopper{i}",
                                          email=f"shopper{i}@example.com")  # confirmations land in the maildir
        with lock:
            report.beacons += len(visit) if sent else 0
            report.latencies_ms.append(ms)
            if status == 201:
                report.orders.append(body)
                report.placed.append((body, country, postal))
                report.split += int(body.get("split_shipment", False))
            elif status == 409:
                report.refused += 1
            else:
                report.errors += 1
        progress.advance(task)

    def window_shop(batch):
        sent = store.beacons(batch)
        with lock:
            report.beacons += len(batch) if sent else 0
        progress.advance(task, browsers // max(1, len(batches)))

    batches = [window[i:i + 500] for i in range(0, len(window), 500)]
    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(window_shop, b) for b in batches]
        list(pool.map(buy, enumerate(baskets)))
        for f in futures:
            f.result()
    report.browsers = browsers
    progress.update(task, completed=n + browsers)


def send_visits(store: DemoStore, report: DemoReport, skus: list[str], seed: int = 5) -> None:
    """Beacons for buyers who go straight to one product and check out (the flash sale's, the outage's), batched
    as a beacon collector forwards them."""
    rng = random.Random(seed + len(skus))
    now = datetime.now(timezone.utc)
    events = [e for sku in skus for e in browse(rng, [], [], [sku], True, now)]
    for i in range(0, len(events), 1000):
        if store.beacons(events[i:i + 1000]):
            report.beacons += len(events[i:i + 1000])


def run_flash_sale(store: DemoStore, report: DemoReport, progress: Progress) -> None:
    task = progress.add_task(f"flash sale: {FLASH_BUYERS} buyers, {FLASH_UNITS} units", total=FLASH_BUYERS)
    lock = threading.Lock()
    start = threading.Event()

    def buy(i):
        start.wait()
        country, postal = DESTINATIONS[i % len(DESTINATIONS)]
        status, body, _ = store.checkout([{"sku": FLASH_SKU, "qty": 1}], country, postal, token=f"tok_flash{i}")
        with lock:
            if status == 201:
                report.flash_sold += 1
                report.placed.append((body, country, postal))
            elif status == 409:
                report.flash_refused += 1
        progress.advance(task)

    send_visits(store, report, [FLASH_SKU] * FLASH_BUYERS)  # the buyers waited on the product page
    with ThreadPoolExecutor(64) as pool:
        futs = [pool.submit(buy, i) for i in range(FLASH_BUYERS)]
        start.set()
        for f in futs:
            f.result()


def _extra_steps() -> list[tuple[str, Callable[[DemoStore, DemoReport, Console], None]]]:
    """Steps run after the shoppers: (status line, fn(store, report, console))."""
    from . import steps

    return [
        ("primary payment processor outage", steps.payment_outage),
        ("delivery promises before and after a warehouse delay", steps.promises_before_and_after_delay),
        ("warehouses and carriers fulfil the demo's orders (compressed clock)", steps.simulate_fulfillment),
        ("restock and capacity plans", lambda store, report, console: steps.plan_ahead(
            store, report, console, report.db_url)),
    ]


def print_summary(console: Console, report: DemoReport, serving: bool = True) -> None:
    t = Table(title="shopfloor demo: buy path", show_header=False)
    t.add_column("what")
    t.add_column("value", justify="right")
    total = len(report.latencies_ms)
    t.add_row("checkouts attempted", str(total))
    t.add_row("orders accepted (201)", str(len(report.orders)))
    t.add_row("refused, out of stock (409)", str(report.refused))
    t.add_row("other errors", str(report.errors))
    t.add_row("split shipments", str(report.split))
    if report.browsers:
        t.add_row("window shoppers / storefront beacons", f"{report.browsers} / {report.beacons}")
    t.add_row("checkout latency p50 / p99", f"{report.p(0.5):.0f} ms / {report.p(0.99):.0f} ms")
    t.add_row("flash sale sold / refused", f"{report.flash_sold} / {report.flash_refused}  (of {FLASH_UNITS} units)")
    t.add_row("sold-out SKUs", ", ".join(report.sold_out[:8]) + (" ..." if len(report.sold_out) > 8 else "")
              or "none")
    if report.fulfillment:
        f = report.fulfillment
        t.add_row("orders fulfilled (simulated, days ahead)", f"{f['orders']} orders, {f['events']} events"
                  + (f", {f['refused']} refused" if f.get("refused") else ""))
        if f.get("not_shipped"):
            t.add_row("not shipped (not handed to a warehouse)",
                      ", ".join(f"{n} {status}" for status, n in sorted(f["not_shipped"].items())))
    t.add_row("outbox delivered / pending / dead",
              f"{report.outbox.get('delivered', 0)} / {report.outbox.get('pending', 0)} / {report.outbox.get('dead', 0)}")
    console.print(t)
    for title, renderable in report.sections:
        console.rule(title)
        console.print(renderable)
    if not serving:  # --once: the server stops after this summary, so no URLs to try
        return
    lines = [f"API docs:      {report.url}/docs", f"OpenAPI:       {report.url}/openapi.json"]
    for o in report.orders[:3]:
        lines.append(f"order lookup:  curl -H 'Authorization: Bearer {report.storefront_key}' "
                     f"{report.url}/v1/orders/{o['order_id']}")
    lines.append(f"admin key:     {report.admin_key}")
    lines.append(f"storefront key: {report.storefront_key}")
    if report.keys_file:
        lines.append(f"keys as shell variables: source {report.keys_file}   (ADMIN, SHOP, INGEST)")
    lines.append(f"dashboard:     {report.url}/dashboard (log in with the admin key)")
    console.rule("try it")
    for line in lines:
        console.print(line, soft_wrap=True, highlight=False)


def demo_settings_env(rules_file: Path) -> dict[str, str]:
    """Settings the demo's server and worker run with (also when served again after ``--once``): the tower's rules
    every second from ``rules_file`` (so the outage is seen while it lasts), and fulfillment events accepted up to
    ``SIMULATED_DAYS_AHEAD`` days ahead (the compressed clock of the simulated warehouses and carriers)."""
    from .steps import SIMULATED_DAYS_AHEAD

    return {"SHOPFLOOR_TOWER_RULES_FILE": str(rules_file.resolve()), "SHOPFLOOR_TOWER_RULES_INTERVAL_S": "1",
            "SHOPFLOOR_FULFILLMENT_MAX_FUTURE_H": str(SIMULATED_DAYS_AHEAD * 24),
            # the demo store sells in Britain first: its cache-warm list and edge warming ask for British pages
            "SHOPFLOOR_CAPACITY_WARM_DEFAULT_COUNTRY": DEMO_COUNTRY,
            "SHOPFLOOR_EDGE_WARM_DESTINATIONS": json.dumps([f"{c}:{p}" for c, p in DESTINATIONS[:1]])}


def run_demo(once: bool = False, port: int = 8000, workdir: Path = Path("var/demo"), shoppers: int = 400,
             seed: int = 42, console: Console | None = None) -> DemoReport:
    from ..store.engine import make_engine
    from ..store.keys import create_api_key
    from ..store.migrate import upgrade_database

    console = console or Console()
    rng = random.Random(seed)
    if port_in_use("127.0.0.1", port):  # checked before the old store is removed: it may be that demo's
        raise DemoError(f"--port: port {port} on 127.0.0.1 is already in use (another demo or server?); stop it "
                        f"or pass --port with a free port")
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    db_url = f"sqlite:///{(workdir / 'shopfloor.db').resolve()}"
    upgrade_database(db_url)
    engine = make_engine(db_url)
    now = datetime.now(timezone.utc)
    _, admin_key = create_api_key(engine, ["admin"], "demo-admin", now)
    _, shop_key = create_api_key(engine, ["storefront"], "demo-storefront", now)
    _, ingest_key = create_api_key(engine, ["ingest"], "demo-ingest", now)
    engine.dispose()
    keys_file = write_keys_file(workdir / "keys.env", admin_key, shop_key, ingest_key)
    # Server and worker write their Prometheus samples to one folder, so the demo's /metrics also shows what the
    # worker did (order confirmations, warehouse handoffs).
    metrics_dir = workdir / "metrics"
    metrics_dir.mkdir()
    rules_file = workdir / "rules.yaml"
    rules_file.write_text(resources.files("shopfloor.demo").joinpath("data/rules.yaml").read_text())
    env = {"SHOPFLOOR_DATA_DIR": str(workdir.resolve()), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir.resolve()),
           **demo_settings_env(rules_file)}
    restore_signals = interrupt_on_termination()
    # The simulated payment processors and rate service run as their own process, as a real gateway would.
    sim = SimulatorProcess(db_url, env=env, log_path=workdir / "simulators.log")
    try:
        sim.start()
        env["SHOPFLOOR_PAYMENTS_SIM_URL"] = sim.url
        server = ServerProcess(db_url, port=port, env=env, log_path=workdir / "server.log").start()
    except BaseException as exc:  # Ctrl-C while starting included: leave no simulator process behind
        sim.stop()
        restore_signals()
        if isinstance(exc, RuntimeError):
            raise DemoError(f"the demo server did not start: {exc}") from None
        raise
    worker = WorkerProcess(db_url, env=env, log_path=workdir / "worker.log").start()
    report = DemoReport(url=server.url, db_url=db_url, admin_key=admin_key, storefront_key=shop_key,
                        keys_file=str(keys_file))
    store = DemoStore(server.url, admin_key, shop_key, ingest_key)
    try:
        catalog = load_catalog()
        with Progress(console=console, transient=True) as progress:
            t = progress.add_task("seeding catalog and stock", total=None)
            seed_store(store, catalog, rng)
            progress.remove_task(t)
            t = progress.add_task("replaying earlier days of orders and traffic", total=None)
            from .steps import seed_fulfillment_history, seed_history

            report.history = seed_history(db_url)
            report.history["fulfillment_events"] = seed_fulfillment_history(store)
            progress.remove_task(t)
            run_shoppers(store, catalog, report, shoppers, rng, progress)
            run_flash_sale(store, report, progress)
        for title, step in _extra_steps():
            with console.status(title):
                step(store, report, console)
        for item in catalog + [{"sku": FLASH_SKU}, {"sku": SCARCE_SKU}]:
            s = store.client.get(f"/v1/stock/{item['sku']}", headers=store.admin).json()
            if s.get("available", 1) == 0:
                report.sold_out.append(item["sku"])
        deadline = time.monotonic() + 90
        from ..orders import outbox_status

        eng = make_engine(db_url)
        while time.monotonic() < deadline:
            report.outbox = outbox_status(eng)
            if report.outbox["pending"] == 0:
                break
            time.sleep(0.5)
        eng.dispose()
        print_summary(console, report, serving=not once)
        if not once:
            console.print(f"[green]serving on {server.url}[/] — Ctrl-C to stop", soft_wrap=True)
            while True:
                time.sleep(1)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM/SIGHUP (interrupt_on_termination)
        pass
    finally:
        store.client.close()
        worker.stop()
        server.stop()
        sim.stop()
        restore_signals()
    console.print(stopped_message(workdir, db_url), soft_wrap=True, highlight=False)
    return report


def stopped_message(workdir: Path, db_url: str) -> str:
    """Where the demo kept its store, and how to serve it again, for after the demo's server has stopped."""
    return (f"demo stopped; its store, logs, mail and keys are kept in {workdir}/ (until the next demo). "
            f"Serve it again: SHOPFLOOR_DATABASE_URL={db_url} SHOPFLOOR_DATA_DIR={workdir} {_cli()} serve")


def _cli() -> str:
    """How to call this install's ``shopfloor`` from here: the bare name when it is on PATH (an activated
    virtualenv, a system install), else its path (``make demo`` leaves it in ``.venv/bin``)."""
    import sys

    found = shutil.which("shopfloor")
    beside = Path(sys.executable).parent / "shopfloor"
    if found and Path(found).resolve() == beside.resolve():
        return "shopfloor"
    if beside.exists():
        try:
            return str(beside.relative_to(Path.cwd()))
        except ValueError:
            return str(beside)
    return "shopfloor"


__all__ = ["DemoError", "DemoReport", "DemoStore", "run_demo"]
