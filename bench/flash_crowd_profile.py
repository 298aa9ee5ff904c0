"""Where the flash crowd's server CPU goes: one ``flash_crowd`` game day with its servers under cProfile.

Every Python process of the run gets a ``sitecustomize`` (through ``PYTHONPATH``) that profiles its main thread
on the thread CPU clock and writes the profile when it receives ``SIGUSR2``; this script sends that signal to the
``shopfloor serve`` processes every ``--every-s`` seconds (the game day stops its servers before an exit hook
could write one). It then prints the crowd run's server profile (the later of the two servers), the top functions
by cumulative time. The profiler slows the server 2-3x: read shares, not the run's latencies.

    python bench/flash_crowd_profile.py [--shoppers 20000] [--units 200] [--top 45] [--every-s 3]
"""

from __future__ import annotations

import argparse
import io
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

_HOOK = """
import os
_out = os.environ.get("SHOPFLOOR_BENCH_PROFILE_DIR")
if _out:
    import cProfile, signal, time
    _profile = cProfile.Profile(time.thread_time)
    _profile.enable()

    def _dump(*_):
        _profile.disable()
        _profile.dump_stats(os.path.join(_out, f"{os.getpid()}.prof"))
        _profile.enable()

    signal.signal(signal.SIGUSR2, _dump)
"""


def _servers() -> list[int]:
    out = subprocess.run(["pgrep", "-f", "shopfloor serve"], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shoppers", type=int, default=20_000)
    ap.add_argument("--units", type=int, default=200)
    ap.add_argument("--top", type=int, default=45)
    ap.add_argument("--every-s", type=float, default=3.0)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sf-flash-profile-"))
    (work / "hook").mkdir()
    (work / "hook" / "sitecustomize.py").write_text(_HOOK)
    (work / "profiles").mkdir()
    env = {**os.environ, "SHOPFLOOR_BENCH_PROFILE_DIR": str(work / "profiles"),
           "PYTHONPATH": str(work / "hook") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = threading.Event()

    def signal_servers() -> None:
        while not done.wait(args.every_s):
            for pid in _servers():
                try:
                    os.kill(pid, signal.SIGUSR2)
                except ProcessLookupError:
                    pass

    signaller = threading.Thread(target=signal_servers, daemon=True)
    signaller.start()
    try:
        subprocess.run([sys.executable, str(Path(__file__).with_name("flash_crowd.py")), "--runs", "1",
                        "--shoppers", str(args.shoppers), "--units", str(args.units)],
                       env=env, check=True, stdout=subprocess.DEVNULL)
    finally:
        done.set()
        signaller.join()
    profiles = sorted((work / "profiles").glob("*.prof"), key=lambda p: p.stat().st_mtime)
    if not profiles:
        sys.exit("no server profile was written")
    crowd = profiles[-1]  # the crowd run's server starts after the baseline's
    text = io.StringIO()
    stats = pstats.Stats(str(crowd), stream=text)
    print(f"crowd run's server profile {crowd}: {stats.total_tt:.2f} profiled CPU-s")
    stats.sort_stats("cumulative").print_stats(args.top)
    print(text.getvalue())


if __name__ == "__main__":
    main()
