"""How long `make test` takes, on a quiet machine and beside other work: a script, not a test.

Runs the README's test command (``make test``, the set-up already done) ``--runs`` times for each number of
``--hogs`` (busy loops of one core each, started just before the suite and stopped after it: a shared box or
a laptop doing something else), the rounds interleaved so that a drift of the machine's own speed touches
every column alike, and prints each run's wall time and CPU seconds (the suite and all its processes), then
the median per column.  The 1-minute load average before each run says how busy the box already was.

    .venv/bin/python benchmarks/suite.py                    # --runs 2 --hogs 0,1,2
    .venv/bin/python benchmarks/suite.py --runs 3 --hogs 0
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from machine import cpu_line  # noqa: E402

ROOT = HERE.parent
HOG = "while True: pass"


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_run(hogs: int) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds and pytest's last line of one ``make test`` beside ``hogs`` busy loops."""
    busy = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(hogs)]
    try:
        cpu0, t0 = children_cpu(), time.perf_counter()
        done = subprocess.run(["make", "-s", "test"], cwd=ROOT, capture_output=True, text=True)
        wall, cpu = time.perf_counter() - t0, children_cpu() - cpu0
    finally:
        for p in busy:
            p.kill()
            p.wait()
    last = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    if done.returncode != 0:
        sys.exit(f"make test failed beside {hogs} busy loop(s): {last}")
    return wall, cpu, re.sub(r"=+", "", last).strip()


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:4.1f} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=2, help="runs per column (default 2)")
    ap.add_argument("--hogs", default="0,1,2", help="busy loops beside the suite, one column each (default 0,1,2)")
    args = ap.parse_args()
    columns = [int(h) for h in args.hogs.split(",")]
    subprocess.run(["make", "-s", "setup"], cwd=ROOT, check=True)  # .venv made once, outside the timing
    print(cpu_line(), f"; {os.cpu_count()} logical CPUs", flush=True)
    print(f"{'busy loops':>10}  {'run':>3}  {'load':>4}  {'wall':>14}  {'CPU s':>6}  pytest", flush=True)
    walls: dict[int, list[float]] = {h: [] for h in columns}
    cpus: dict[int, list[float]] = {h: [] for h in columns}
    for run in range(1, args.runs + 1):
        for hogs in columns:
            load = os.getloadavg()[0]
            wall, cpu, last = one_run(hogs)
            walls[hogs].append(wall)
            cpus[hogs].append(cpu)
            print(f"{hogs:>10}  {run:>3}  {load:>4.1f}  {minutes(wall):>14}  {cpu:>6.0f}  {last}", flush=True)
    print("\nmedians")
    for hogs in columns:
        print(f"{hogs:>10}  {'':>3}  {'':>4}  {minutes(statistics.median(walls[hogs])):>14}  "
              f"{statistics.median(cpus[hogs]):>6.0f}  (CPU s of the suite, the busy loops not counted)")


if __name__ == "__main__":
    main()
