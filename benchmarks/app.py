"""Classroom speed of the app: page renders, demo latency and demo duration, on this machine.

    .venv/bin/python benchmarks/app.py            # the default classroom settings
    .venv/bin/python benchmarks/app.py --full     # also the default full transfer of lesson 6

Runs the real pages in-process with ``streamlit.testing.v1.AppTest`` (the script work a browser
waits for; websocket and drawing in the browser are not included).  Targets, from the brief:
every page renders in < 3 s with the models cached; a demo shows its first image < 2 s after
the press; every default demo of lessons 2-5 finishes in < 30 s.

* "cold" = the first visit of a page in a new process whose backbone (and lesson 1's atlas) are
  loaded, but whose figure caches are empty; "warm" = a new session after that (a student who
  opens the page after the teacher did: shared figure caches hit).
* A demo's "first image" = from the press (start of the script run) to the first image sent to
  the page; "finished" = the whole script run of the press.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TEACHKIT_OFFLINE", "1")

from streamlit.testing.v1 import AppTest  # noqa: E402

from teachkit.lessons.pages import PAGES as REGISTRY  # noqa: E402 - the one page registry

APP = str(ROOT / "app.py")
PAGES = {p.number: str(p.path) for p in REGISTRY}  # lesson number -> its script (AppTest.switch_page)


def session(page: int, lang: str = "en") -> tuple[AppTest, float]:
    """A new session on ``page``; returns it and the seconds the run that drew the page took."""
    at = AppTest.from_file(APP, default_timeout=900)
    at.query_params["lang"] = lang
    t = time.perf_counter()
    at.run()  # the first run draws lesson 1, the default page
    seconds = time.perf_counter() - t
    if page != 1:
        t = time.perf_counter()
        at.switch_page(PAGES[page]).run()
        seconds = time.perf_counter() - t
    problems = [e.value for e in at.exception] + [e.value for e in at.error]
    if problems:
        raise SystemExit(f"page {page} ({lang}) failed: {problems}")
    return at, seconds


def press(at: AppTest, key: str, timing: str | None) -> dict:
    """Press a button; returns the seconds to the first image and to the end of the run."""
    t0_wall, t0 = time.time(), time.perf_counter()
    at.button(key=key).click().run()
    total = time.perf_counter() - t0
    problems = [e.value for e in at.exception] + [e.value for e in at.error]
    if problems:
        raise SystemExit(f"pressing {key} failed: {problems}")
    first = None
    if timing:
        info = at.session_state["_timings"].get(timing) if "_timings" in at.session_state else None
        if info:
            first = info["first_image_at"] - t0_wall
    return {"first_image_s": first, "total_s": total}


def cold_render(page: int) -> float:
    """The first visit of ``page`` in a fresh process (backbone loaded, no warm-up, empty figure caches)."""
    env = dict(os.environ, TEACHKIT_WARMUP="0")
    out = subprocess.run([sys.executable, __file__, "--cold-page", str(page)], env=env, capture_output=True,
                         text=True, timeout=900)
    lines = [l for l in out.stdout.splitlines() if l.startswith("COLD ")]
    if out.returncode or not lines:
        raise SystemExit(f"cold render of page {page} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    return float(lines[-1].split()[1])


def first_visit(page: int, lang: str) -> str:
    """benchmarks/first_visit.py in a fresh process: a cold server whose warm-up starts with the visit."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "first_visit.py"), str(page), lang],
                         capture_output=True, text=True, timeout=900)
    lines = [l for l in out.stdout.splitlines() if l.startswith("lesson ")]
    if not lines:
        raise SystemExit(f"first visit of lesson {page} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    return lines[-1]


def fmt(x) -> str:
    return "–" if x is None else f"{x:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="also run lesson 6's default transfer")
    ap.add_argument("--repeat", type=int, default=1, help="repeat the warm measurements (median)")
    ap.add_argument("--cold-page", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()

    import streamlit as st
    import torch

    from teachkit.lessons import jobs, resources, settings
    from teachkit.messages import text

    if args.cold_page:  # child process: load the backbone, then time the page's first visit
        resources.load_net()
        print(f"COLD {session(args.cold_page)[1]:.3f}")
        return

    print(f"# teachkit app benchmark — {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"python {platform.python_version()}, torch {torch.__version__}, streamlit {st.__version__}, "
          f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, load average "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"settings: fast={settings.fast_mode()}, demo size env={os.environ.get('TEACHKIT_DEMO_SIZE', '-')}, "
          f"atlas dataset={settings.atlas_default_dataset()}")

    # -- models into the cache (what a teacher's first page load pays once) --
    t = time.perf_counter()
    session(1)
    print(f"\nfirst app start (backbone load + lesson 1 with its atlas from the disk cache, or a scan): "
          f"{time.perf_counter() - t:.2f} s")
    t = time.perf_counter()
    resources.warm_figures()
    print(f"warm-up of the default figures (a background thread in the app): {time.perf_counter() - t:.2f} s")

    # -- page renders --
    print("\n## Page renders (seconds; target < 3)\n")
    print("cold: first visit in a fresh process with the backbone loaded and no warm-up; warm: a new "
          "session after the page was drawn once in this process (shared figure caches)\n")
    print("| page | cold en | warm en | warm zh |")
    print("|---|---|---|---|")
    for n in PAGES:
        cold = cold_render(n)
        session(n)  # fill the shared caches
        warm_en = statistics.median(session(n)[1] for _ in range(args.repeat))
        warm_zh = statistics.median(session(n, "zh")[1] for _ in range(args.repeat))
        print(f"| {n}. {text(f'ui.title_{n}', 'en')} | {cold:.2f} | {warm_en:.2f} | {warm_zh:.2f} |")

    # -- first visits while the warm-up runs (a server that has just started) --
    print("\n## First visits of a server that has just started (its warm-up running alongside)\n")
    for n in (1, 5):
        for lang in ("en", "zh"):
            print(f"- {first_visit(n, lang)}")

    # -- demos --
    print("\n## Demos with the default settings (seconds; first image < 2, finished < 30)\n")
    print("| demo | settings | steps done | first image | finished |")
    print("|---|---|---|---|---|")
    limit = settings.demo_seconds()
    demos = [
        (2, "p2_run", "lesson2", "style transfer, classroom preset",
         f"{settings.demo_size(256)} px, {settings.demo_steps(0) or 60} steps from content + noise",
         lambda ss: ss["p2_result"]["steps"]),
        (3, "p3_step", None, "one Adam step on the pixels (Step)", f"{settings.demo_size(128)} px",
         lambda ss: ss["p3"].steps),
        (3, "p3_run", "lesson3", "Run", f"{settings.demo_size(128)} px, {settings.demo_steps(30)} steps",
         lambda ss: ss["p3"].steps),
        (4, "p4_run", "lesson4", "content reconstruction (relu4_2)",
         f"{settings.demo_size(128, fast=32)} px, {settings.demo_steps(80, fast=2)} steps",
         lambda ss: ss["p4_result"]["steps"]),
        (4, "p4_grid", "lesson4_grid_p4_shallow", "shallow / middle / deep (each its third of the limit)",
         f"{settings.demo_size(96, fast=32)} px, 3 x {settings.demo_steps(40, fast=2)} steps",
         lambda ss: "+".join(str(item[3]) for item in ss["p4_grid_result"]["items"])),
        (5, "p5_texture_run", "lesson5_0", "texture synthesis, 5 layer sets (each its fifth of the limit)",
         f"{settings.demo_size(80, fast=32)} px, 5 x {settings.demo_steps(30, fast=2)} steps",
         lambda ss: "+".join(str(n) for n in ss["p5_texture"]["steps"])),
    ]
    for n, key, timing, name, what, done in demos:
        at, _ = session(n)
        r = press(at, key, timing)
        first = r["first_image_s"]
        if key == "p3_step":  # the new image is drawn right after the step
            first = r["total_s"]
        steps = done(at.session_state) if done else "–"
        print(f"| {n}. {name} | {what} | {steps} | {fmt(first)} | {fmt(r['total_s'])} |")
    if args.full:
        at, _ = session(6)
        t0_wall = time.time()
        at.button(key="p6_start").click().run()
        job = at.session_state["p6_job"]
        while job.alive:
            time.sleep(0.2)
        first = job.first_image_at - t0_wall if job.first_image_at else None
        cfg = job.config
        print(f"| 6. full transfer (background thread) | {cfg.size} px, {cfg.steps} steps | "
              f"{len(job.result.history)} | {fmt(first)} | {job.finished_at - t0_wall:.2f} |")

    if limit:
        print(f"\n(every demo of lessons 2-5 stops after {limit:.0f} s with what it has: TEACHKIT_DEMO_SECONDS)")

    # -- three sessions at once --
    print("\n## Three sessions at once (lesson 6, 128 px, 30 steps, started together)\n")
    sessions = []
    for content in ("chelsea", "astronaut", "rocket"):
        at, _ = session(6)
        at.selectbox(key="p6_content_sample__en").set_value(content)  # teachkit.lessons.i18n.choice: key + "__" + lang
        at.slider(key="p6_size").set_value(128)
        at.slider(key="p6_steps").set_value(30)
        at.run()
        sessions.append(at)
    t0_wall = time.time()
    for at in sessions:
        at.button(key="p6_start").click().run()
    started = [at.session_state["p6_job"] for at in sessions]
    while any(job.alive for job in started):
        time.sleep(0.2)
    for job in started:
        print(f"- {job.state}: {job.result.image.size[0]}x{job.result.image.size[1]} px, first image after "
              f"{fmt(job.first_image_at - t0_wall if job.first_image_at else None)} s, finished after "
              f"{job.finished_at - t0_wall:.1f} s")
    print(f"(at most {jobs.MAX_JOBS} transfers compute at once; the others wait for a free slot)")


if __name__ == "__main__":
    main()
