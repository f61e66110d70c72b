"""How long `make test` takes, on a quiet machine, beside other work and as on an AVX2 CPU: a script, not a test.

Runs the README's test command (``make test``, the set-up already done) ``--runs`` times for each column of
``--columns``: ``N`` busy loops of one core each beside the suite (started just before it, stopped after it:
a shared box, or a laptop doing something else), and with ``:avx2`` torch limited to AVX2 kernels
(``ATEN_CPU_CAPABILITY=avx2``, ``ONEDNN_MAX_CPU_ISA=AVX2``) on an AVX-512 machine, as most classroom laptops
run it.  The rounds are interleaved, so that a drift of the machine's own speed touches every column alike;
it prints each run's wall time and CPU seconds (the suite and all its processes), then the median per column.
The 1-minute load average before each run says how busy the box already was.

    .venv/bin/python benchmarks/suite.py                    # --runs 2 --columns 0,0:avx2,1:avx2
    .venv/bin/python benchmarks/suite.py --runs 3 --columns 0
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


AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def one_run(column: str) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds and pytest's last line of one ``make test`` as ``column`` says."""
    hogs, _, isa = column.partition(":")
    env = dict(os.environ, **(AVX2 if isa == "avx2" else {}))
    busy = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(int(hogs))]
    try:
        cpu0, t0 = children_cpu(), time.perf_counter()
        done = subprocess.run(["make", "-s", "test"], cwd=ROOT, env=env, capture_output=True, text=True)
        wall, cpu = time.perf_counter() - t0, children_cpu() - cpu0
    finally:
        for p in busy:
            p.kill()
            p.wait()
    last = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    if done.returncode != 0:
        sys.exit(f"make test failed ({column}): {last}")
    return wall, cpu, re.sub(r"=+", "", last).strip()


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:4.1f} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=2, help="runs per column (default 2)")
    ap.add_argument("--columns", default="0,0:avx2,1:avx2",
                    help="one column each: busy loops beside the suite, ':avx2' for torch's AVX2 kernels "
                         "(default 0,0:avx2,1:avx2)")
    args = ap.parse_args()
    columns = args.columns.split(",")
    for column in columns:
        hogs, _, isa = column.partition(":")
        if not hogs.isdigit() or isa not in ("", "avx2"):
            ap.error(f"--columns: {column!r} is not N or N:avx2")
    subprocess.run(["make", "-s", "setup"], cwd=ROOT, check=True)  # .venv made once, outside the timing
    print(cpu_line(), f"; {os.cpu_count()} logical CPUs", flush=True)
    print(f"{'column':>10}  {'run':>3}  {'load':>4}  {'wall':>14}  {'CPU s':>6}  pytest", flush=True)
    walls: dict[str, list[float]] = {c: [] for c in columns}
    cpus: dict[str, list[float]] = {c: [] for c in columns}
    for run in range(1, args.runs + 1):
        for column in columns:
            load = os.getloadavg()[0]
            wall, cpu, last = one_run(column)
            walls[column].append(wall)
            cpus[column].append(cpu)
            print(f"{column:>10}  {run:>3}  {load:>4.1f}  {minutes(wall):>14}  {cpu:>6.0f}  {last}", flush=True)
    print("\nmedians (column: busy loops beside the suite, :avx2 torch's AVX2 kernels; CPU s: the suite's own)")
    for column in columns:
        print(f"{column:>10}  {'':>3}  {'':>4}  {minutes(statistics.median(walls[column])):>14}  "
              f"{statistics.median(cpus[column]):>6.0f}")


if __name__ == "__main__":
    main()
