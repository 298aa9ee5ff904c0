"""Server CPU per checkout without HTTP: the app as ``shopfloor serve`` builds it, driven through ASGI.

    python bench/checkout_asgi_cost.py [--n 4000] [--conc 64] [--rounds 3] [--wrap module:Qual.name,...]

A fresh SQLite store seeded as ``bench/checkout.py`` seeds it, the simulator process on core 1 (default 20 ms
latency), and this process pinned to core 0: ``--conc`` tasks on uvloop send ``--n`` checkouts per round (bodies
as the benchmark's wrk script makes them) straight into the ASGI app, after a warm-up of 1,500. Per round it prints
the event loop's CPU (this thread's clock), the checkout writer's (``/proc``, 10 ms ticks) and the process's, in
microseconds per checkout. uvicorn's HTTP parsing is left out (the same for every code), so the loop's figure
moves less with the machine than the HTTP benchmark's; the writer's still follows the batch sizes, which follow
the throughput (``bench/checkout_writer_cost.py`` fixes them). ``--wrap`` times synchronous functions on the
calling thread's CPU clock (each call's own total, nested calls included) and prints microseconds per checkout.
"""
import argparse, asyncio, json, os, random, sys, tempfile, time
from pathlib import Path

ap = argparse.ArgumentParser(description="Server CPU per checkout without HTTP: the app as `shopfloor serve` builds it, "
                                         "driven through ASGI; one JSON line per round.")
ap.add_argument("--n", type=int, default=6000, help="checkouts per round")
ap.add_argument("--conc", type=int, default=64, help="concurrent tasks sending checkouts")
ap.add_argument("--rounds", type=int, default=3, help="measured rounds")
ap.add_argument("--wrap", default="", help="comma-separated module:Qual.name of synchronous functions to time")
args = ap.parse_args()

from shopfloor.gameday.seed import seed_bench_store
from shopfloor.runtime import SimulatorProcess

tmp = Path(tempfile.mkdtemp(prefix="sf-asgi-cost-"))
url = f"sqlite:///{tmp / 'bench.db'}"
key = seed_bench_store(url, 500, 2000)
sim = SimulatorProcess(url, log_path=tmp / "sim.log", pin_core=1)
sim.start(timeout=30)
os.environ["SHOPFLOOR_DATABASE_URL"] = url
os.environ["SHOPFLOOR_PAYMENTS_SIM_URL"] = sim.url
os.sched_setaffinity(0, {0})
from shopfloor.store.migrate import upgrade_database
upgrade_database(url)
import uvloop
from shopfloor.api.app import app_from_env
import importlib, threading
ACC = {}
def wrap(modname, qual):
    mod = importlib.import_module(modname)
    parts = qual.split(".")
    owner = mod
    for p in parts[:-1]:
        owner = getattr(owner, p)
    fn = getattr(owner, parts[-1])
    tt = time.thread_time
    def w(*a, **k):
        t = tt()
        try:
            return fn(*a, **k)
        finally:
            d = ACC.setdefault(qual, [0, 0.0]); d[0] += 1; d[1] += tt() - t
    setattr(owner, parts[-1], w)
if args.wrap:
    for spec in args.wrap.split(","):
        m, q = spec.split(":")
        wrap(m, q)

def writer_cpu():
    tick = os.sysconf("SC_CLK_TCK")
    tot = 0.0
    for tid in os.listdir("/proc/self/task"):
        try:
            name = open(f"/proc/self/task/{tid}/comm").read().strip()
            if name.startswith("checkout-writer"):
                f = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
                tot += (int(f[11]) + int(f[12])) / tick
        except OSError:
            pass
    return tot

def all_cpu():
    t = os.times()
    return t.user + t.system

postals = ["94107", "10001", "60601", "30301", "98101"]
counter = [0]

async def one(app, tag, statuses):
    counter[0] += 1
    body = ('{"lines":[{"sku":"SKU%05d","qty":%d}],"ship_to":{"country":"US","postal_code":"%s"},'
            '"payment":{"token":"tok_ok"}}' % (random.randrange(500), random.randint(1, 2),
                                                random.choice(postals))).encode()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/checkouts", "raw_path": b"/v1/checkouts", "query_string": b"", "root_path": "",
             "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000),
             "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
                         (b"authorization", b"Bearer " + key.encode()),
                         (b"idempotency-key", f"{tag}-{counter[0]}".encode()),
                         (b"content-length", str(len(body)).encode())]}
    sent = [False]
    async def receive():
        if not sent[0]:
            sent[0] = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
    async def send(msg):
        if msg["type"] == "http.response.start":
            statuses[msg["status"]] = statuses.get(msg["status"], 0) + 1
    await app(scope, receive, send)

async def drive(app, n, tag):
    statuses = {}
    left = [n]
    async def worker():
        while left[0] > 0:
            left[0] -= 1
            await one(app, tag, statuses)
    await asyncio.gather(*(worker() for _ in range(args.conc)))
    return statuses

async def main():
    app = app_from_env()
    q = asyncio.Queue()
    await q.put({"type": "lifespan.startup"})
    started = asyncio.Event()
    async def lreceive():
        return await q.get()
    async def lsend(msg):
        if msg["type"] == "lifespan.startup.complete":
            started.set()
    life = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}}, lreceive, lsend))
    await started.wait()
    await drive(app, 1500, "warm")
    out = []
    for r in range(args.rounds):
        l0, w0, a0, t0 = time.thread_time(), writer_cpu(), all_cpu(), time.perf_counter()
        st = await drive(app, args.n, f"r{r}")
        l1, w1, a1, t1 = time.thread_time(), writer_cpu(), all_cpu(), time.perf_counter()
        res = {"loop_us": round(1e6 * (l1 - l0) / args.n, 1), "writer_us": round(1e6 * (w1 - w0) / args.n, 1),
               "process_us": round(1e6 * (a1 - a0) / args.n, 1), "rps": round(args.n / (t1 - t0), 1),
               "statuses": st, "load": round(os.getloadavg()[0], 2)}
        print(json.dumps(res), flush=True)
        out.append(res)
        if ACC:
            print(json.dumps({k: [v[0], round(1e6 * v[1] / args.n, 1)] for k, v in ACC.items()}), flush=True)
        ACC.clear()
    await q.put({"type": "lifespan.shutdown"})
    await asyncio.wait_for(life, 10)
    med = lambda k: sorted(o[k] for o in out)[len(out) // 2]
    print(json.dumps({"median": {k: med(k) for k in ("loop_us", "writer_us", "process_us", "rps")}}), flush=True)

try:
    uvloop.run(main())
finally:
    sim.stop()
