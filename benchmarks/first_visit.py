"""First visit of a lesson in a cold server: seconds until the page is fully drawn.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/first_visit.py 1 zh     # lesson 1, Chinese
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/first_visit.py 5 en
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/first_visit.py 5 en --after-warm-up
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/first_visit.py 5 zh --students 6

One new process per measurement (empty figure caches; the backbone, the disk-cached atlas and
whatever ``teachkit prepare`` stored are read from disk as a real server would).  The warm-up
thread runs as it does under ``streamlit run`` (started by the first visit, or, with
``--after-warm-up``, started and finished before the visit: a server started before class).
"drawn" = the script run that draws the page (lesson 5: the session opened lesson 1 just before); for lesson 5 the channels'
atlas patches come in a later run, so the page is run again once lesson 1's atlas is ready and
that run is added ("fully drawn").  ``--students N``: N sessions open the page at the same moment
(one thread each, as the server runs them); the median and the slowest are printed.
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TEACHKIT_OFFLINE", "1")

from streamlit.testing.v1 import AppTest  # noqa: E402

from teachkit.lessons.pages import page  # noqa: E402 - the one page registry

PAGES = {n: str(page(n).path) for n in (1, 5)}  # the two lessons this benchmark measures


def visit(page: int, lang: str) -> tuple[float, float]:
    """One session opening ``page``: (seconds to drawn, seconds to fully drawn)."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=900)
    at.query_params["lang"] = lang
    if page != 1:  # (AppTest's switch_page before the first run does not always take: open lesson 1 first)
        at.run()
        at.switch_page(PAGES[page])
    t = time.perf_counter()
    at.run()
    drawn = time.perf_counter() - t
    if not at.title or not at.title[0].value.startswith(f"{page}. "):
        raise SystemExit(f"lesson {page} was not drawn: {[x.value for x in at.title]}")
    problems = [e.value for e in at.exception] + [e.value for e in at.error]
    if problems:
        raise SystemExit(f"lesson {page} ({lang}) failed: {problems}")
    full = drawn
    if page == 5:
        from teachkit.lessons import jobs
        from teachkit.lessons.resources import load_net
        from teachkit.lessons.settings import atlas_default_dataset
        from teachkit.features import DEFAULT_STYLE_LAYERS

        builder = jobs.atlas_builder(atlas_default_dataset(), load_net(), DEFAULT_STYLE_LAYERS)
        builder.done.wait()
        at.run()
        full = time.perf_counter() - t
    return drawn, full


def main() -> None:
    page, lang = int(sys.argv[1]), sys.argv[2]
    students = int(sys.argv[sys.argv.index("--students") + 1]) if "--students" in sys.argv else 1
    t0 = time.perf_counter()
    from teachkit.lessons.resources import load_net

    load_net()  # the server has loaded the backbone before anybody visits
    t_load = time.perf_counter() - t0
    if "--after-warm-up" in sys.argv:  # a server started before class: its warm-up has finished
        from teachkit.lessons import resources

        thread = resources.start_warm_up()
        if thread is not None:
            thread.join()
    if students == 1:
        drawn, full = visit(page, lang)
        print(f"lesson {page} {lang}: drawn {drawn:.2f} s, fully drawn {full:.2f} s (backbone load {t_load:.2f} s)")
        return
    results: list[tuple[float, float]] = []
    threads = [threading.Thread(target=lambda: results.append(visit(page, lang))) for _ in range(students)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    full = [f for _, f in results]
    print(f"lesson {page} {lang}, {students} students at once: fully drawn median {statistics.median(full):.2f} s, "
          f"slowest {max(full):.2f} s ({len(results)} of {students} sessions finished)")


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)  # not a normal exit: the warm-up thread may still be inside torch, which aborts at teardown
