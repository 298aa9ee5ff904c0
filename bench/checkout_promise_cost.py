"""CPU of the checkout's promise for one-line orders, in process: ``BuyPath._line_promises`` and
``combine_promises`` as the checkout calls them, on a store seeded as ``bench/checkout.py`` seeds it (no writes
in between, so the stock read finds its page cache intact; under the benchmark it costs about 10 us more).

    python bench/checkout_promise_cost.py [profile]   (pin it: taskset -c 0)

Prints microseconds per order for three passes over 20,000 orders (this thread's CPU clock); ``profile`` adds a
cProfile of one more pass.
"""
import argparse, os, time, tempfile, random, cProfile, pstats

ap = argparse.ArgumentParser(description="CPU per order of the checkout's promise (BuyPath._line_promises + "
                                         "combine_promises), in process; prints microseconds per order for three passes.")
ap.add_argument("profile", nargs="?", choices=["profile"], help="add a cProfile of one more pass")
args = ap.parse_args()

from pathlib import Path
from shopfloor.gameday.seed import seed_bench_store
tmp = Path(tempfile.mkdtemp(prefix="ck2-pm-"))
url = f"sqlite:///{tmp/'b.db'}"
seed_bench_store(url, 500, 2000)
os.environ["SHOPFLOOR_DATABASE_URL"] = url
from shopfloor.config import Settings
from shopfloor.bootstrap import build_container
c = build_container(Settings())
bp = c.services["buy_path"]
from shopfloor.orders.checkout import PlaceOrder
from shopfloor.domain.stock import OrderLineRequest
from shopfloor.orders.service import combine_promises
postals = ["94107", "10001", "60601", "30301", "98101"]
cmds = [PlaceOrder("k", f"i{i}", "h", (OrderLineRequest("SKU%05d" % random.randrange(500), random.randint(1, 2)),), "US",
                   random.choice(postals), {"token": "tok_ok"}, {}) for i in range(20000)]
for cmd in cmds[:2000]:
    combine_promises(bp._line_promises(cmd))
for rep in range(3):
    t = time.thread_time()
    for cmd in cmds:
        combine_promises(bp._line_promises(cmd))
    print("us per promise+combine", round(1e6 * (time.thread_time() - t) / len(cmds), 2))
if args.profile:
    pr = cProfile.Profile(time.thread_time); pr.enable()
    for cmd in cmds:
        combine_promises(bp._line_promises(cmd))
    pr.disable(); pstats.Stats(pr).sort_stats("tottime").print_stats(25)
