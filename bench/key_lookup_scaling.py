"""Group-commit idempotency look-up as the store grows: by (scope, key) vs by key alone (the old statement).

    python bench/key_lookup_scaling.py [--database-url URL] [--sizes 10000,100000,500000] [--repeat 20]

Fills ``idempotency_keys`` with one API key's records up to each size (default: a fresh SQLite file) and times
the batched look-up of 16 new keys, which every group commit runs, with the shipped statement (both primary-key
columns constrained: an index search per pair) and with the old one (``key IN (...)`` alone: the leading key
column is free, so the database scans the table). Prints one JSON object per size with both times and their ratio.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import bindparam, insert, select

from shopfloor.store import orders_repo as repo
from shopfloor.store.engine import make_engine
from shopfloor.store.migrate import upgrade_database
from shopfloor.store.tables import idempotency_keys

OLD = select(idempotency_keys.c.scope, idempotency_keys.c.key, idempotency_keys.c.request_hash,
             idempotency_keys.c.status_code, idempotency_keys.c.response).where(
    idempotency_keys.c.key.in_(bindparam("b_keys", expanding=True)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=None, help="an empty database (default: a fresh SQLite file)")
    ap.add_argument("--sizes", default="10000,100000,500000")
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    sizes = sorted(int(x) for x in args.sizes.split(","))
    url = args.database_url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'lookup.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    now = datetime.now(timezone.utc)
    scope = "key_bench:checkout"
    pairs = [(scope, f"new-{i}") for i in range(16)]
    have = 0
    for size in sizes:
        with engine.begin() as conn:
            for start in range(have, size, 5000):
                conn.execute(insert(idempotency_keys), [
                    {"scope": scope, "key": f"k{i}", "request_hash": "h" * 64, "status_code": 201,
                     "response": '{"order_id": "ord_x"}' * 10, "created_at": now}
                    for i in range(start, min(size, start + 5000))])
        have = size
        with engine.connect() as conn:
            t = time.perf_counter()
            for _ in range(args.repeat):
                conn.execute(OLD, {"b_keys": [k for _, k in pairs]}).all()
            old_ms = 1000 * (time.perf_counter() - t) / args.repeat
            t = time.perf_counter()
            for _ in range(args.repeat):
                repo.get_idempotency_records(conn, pairs)
            new_ms = 1000 * (time.perf_counter() - t) / args.repeat
        print(json.dumps({"benchmark": "key_lookup_scaling", "database": engine.dialect.name, "rows": size,
                          "batch_keys": len(pairs), "by_scope_and_key_ms": round(new_ms, 3),
                          "by_key_alone_ms": round(old_ms, 3), "ratio_old_over_new": round(old_ms / new_ms, 1)}),
              flush=True)
    engine.dispose()


if __name__ == "__main__":
    main()
