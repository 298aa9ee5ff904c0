"""Server CPU per request over kept-alive connections against a new connection per request.

Starts ``shopfloor serve`` on a fresh SQLite store and sends ``GET /healthz`` ``--n`` times, 64 at once, first
over kept-alive connections, then on a new connection each (closed after its answer), alternating, ``--repeats``
times. Reads the server's CPU (user + system of its process tree, via psutil) before and after each phase. The
difference between the two is what a new connection costs the server; prints JSON with the medians.

    python bench/connection_cost.py [--n 4000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
from pathlib import Path

import psutil

from shopfloor.runtime import ServerProcess


async def _load(port: int, n: int, fresh: bool, concurrency: int = 64) -> None:
    gate = asyncio.Semaphore(concurrency)
    idle: list = []

    async def one() -> None:
        async with gate:
            reader, writer = (await asyncio.open_connection("127.0.0.1", port)) if fresh or not idle else idle.pop()
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length"))
            await reader.readexactly(length)
            if fresh:
                writer.close()
            else:
                idle.append((reader, writer))

    await asyncio.gather(*(one() for _ in range(n)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="sf-conn-cost-"))
    server = ServerProcess(f"sqlite:///{folder / 'bench.db'}", log_path=folder / "server.log").start()
    try:
        tree = [psutil.Process(server.proc.pid), *psutil.Process(server.proc.pid).children(recursive=True)]

        def cpu_s() -> float:
            return sum(sum(p.cpu_times()[:2]) for p in tree if p.is_running())

        asyncio.run(_load(server.port, args.n // 2, False))  # warm-up
        runs: dict[str, list[float]] = {"keep_alive": [], "new_connection": []}
        for _ in range(args.repeats):
            for fresh, name in ((False, "keep_alive"), (True, "new_connection")):
                before = cpu_s()
                asyncio.run(_load(server.port, args.n, fresh))
                runs[name].append(round((cpu_s() - before) / args.n * 1e6, 1))
        medians = {k: statistics.median(v) for k, v in runs.items()}
        print(json.dumps({"benchmark": "connection_cost", "requests": args.n, "runs_us_per_request": runs,
                          "median_us_per_request": medians,
                          "new_connection_extra_us": round(medians["new_connection"] - medians["keep_alive"], 1)},
                         indent=2))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
