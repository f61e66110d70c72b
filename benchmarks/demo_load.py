"""Lessons 2 and 3's live demos on a busy computer: do they end within the demo time limit?

    .venv/bin/python benchmarks/demo_load.py [--runs 3] [--hogs 2]

Runs the real pages in-process (``streamlit.testing.v1.AppTest``) with the classroom settings (the
default limit, ``TEACHKIT_DEMO_SECONDS`` = 25 s; the results of ``teachkit prepare`` in the cache) and
presses lesson 2's *Run* and lesson 3's *Run* ``--runs`` times each: first on the machine as it is,
then with ``--hogs`` CPU hogs (``python -c "while True: pass"``, one per core of a 2-core laptop)
running beside it.  Per press: the seconds from the press to the end of the page's run, the steps
done of those planned, and how it ended -- *complete* (every step), *fitted* (the steps that fit
into the limit: the run measured its first steps and planned fewer), *prepared* (lesson 2: too few
fitted, the page showed the prepared transfer) or *cut* (stopped by the limit itself).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("TEACHKIT_OFFLINE", "1")
os.environ["TEACHKIT_WARMUP"] = "0"  # no background figures competing with the demos

from streamlit.testing.v1 import AppTest  # noqa: E402

from machine import cpu_line  # noqa: E402

APP = str(ROOT / "app.py")


def ui(key: str) -> str:
    from teachkit.messages import catalogue

    return catalogue("en")[f"ui.{key}"]


def how_it_ended(captions: list[str], done: int, planned: int) -> str:
    for key, word in (("stopped_at_limit", "cut"), ("p2_busy_prepared", "prepared")):
        if any(c.startswith(ui(key).split("{")[0]) for c in captions):
            return word
    return "complete" if done == planned else "fitted"


def press(page: str, button: str) -> tuple[float, int, int, str]:
    """A fresh session on ``page``, then one press: (seconds, steps done, steps planned, how it ended)."""
    at = AppTest.from_file(APP, default_timeout=600)
    at.run()
    at.switch_page(page).run()
    before = at.session_state["p3"].steps if "p3" in at.session_state else 0
    t = time.perf_counter()
    at.button(key=button).click().run()
    seconds = time.perf_counter() - t
    problems = [e.value for e in at.exception] + [e.value for e in at.error]
    if problems:
        raise SystemExit(f"{page}: {problems}")
    if button == "p2_run":
        r = at.session_state["p2_result"]
        from teachkit.transfer import TransferConfig, schedule

        done, planned = r["steps"], schedule(TransferConfig.preset("quick")).steps
        print(f"  (lesson 2: press to the run's end {r['seconds']:.1f} s, cut by the limit: {r['cut']})")
    else:
        done, planned = at.session_state["p3"].steps - before, 30
    return seconds, done, planned, how_it_ended([c.value for c in at.caption], done, planned)


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--hogs", type=int, default=2)
    ap.add_argument("--lessons", default="2,3", help="which demos: 2, 3 or 2,3")
    ap.add_argument("--only-hogs", action="store_true", help="skip the runs without hogs")
    args = ap.parse_args()
    print(f"machine: {cpu_line()}")
    from teachkit.lessons.settings import demo_seconds

    print(f"demo time limit: {demo_seconds()} s")
    press("lessons/2_style_transfer.py", "p2_run")  # first press: the network and its kernels warm
    rows = []
    for hogs in (args.hogs,) if args.only_hogs else (0, args.hogs):
        procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(hogs)]
        try:
            time.sleep(2 if hogs else 0)
            start_load = load()
            for lesson, page, button in ((2, "lessons/2_style_transfer.py", "p2_run"), (3, "lessons/3_cost.py", "p3_run")):
                if str(lesson) not in args.lessons.split(","):
                    continue
                for i in range(args.runs):
                    secs, done, planned, how = press(page, button)
                    rows.append((hogs, lesson, secs, done, planned, how))
                    print(f"hogs={hogs} lesson {lesson} press {i + 1}: {secs:5.1f} s, {done}/{planned} steps, {how}"
                          f"  (load {load()})", flush=True)
            print(f"load average at the start / end of the {hogs}-hog runs: {start_load} / {load()}")
        finally:
            for p in procs:
                p.kill()
                p.wait()
    print("\n| CPU hogs | lesson | presses | seconds: median (max) | steps done of planned (median) | ended |")
    print("|---|---|---|---|---|---|")
    for hogs in (0, args.hogs):
        for lesson in (2, 3):
            mine = [r for r in rows if r[0] == hogs and r[1] == lesson]
            if not mine:
                continue
            secs = [r[2] for r in mine]
            ends = ", ".join(f"{sum(r[5] == w for r in mine)} {w}" for w in ("complete", "fitted", "prepared", "cut")
                             if any(r[5] == w for r in mine))
            print(f"| {hogs} | {lesson} | {len(mine)} | {statistics.median(secs):.1f} ({max(secs):.1f}) | "
                  f"{statistics.median(r[3] for r in mine):.0f} of {mine[0][4]} | {ends} |")


if __name__ == "__main__":
    main()
