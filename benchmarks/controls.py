"""How fast every control of the app answers, on prepared defaults (issue 18: <= 1 s median, <= 2 s worst).

    TEACHKIT_OFFLINE=1 .venv/bin/python benchmarks/controls.py [--repeat 5] [--lang en]

Server-side time from the widget change to the end of the script run that redraws the page, measured
in-process with ``streamlit.testing.v1.AppTest`` after the app's warm-up (``resources.warm_figures``, the
app's background thread at start) and with ``teachkit prepare`` results in the cache, as in class.
AppTest reruns the whole page for every change, also where the browser reruns only the control's
fragment (lessons 1 and 5), so these figures are upper bounds.  Each control is moved between the
values a student would try (the first change of a value can make a figure; later ones hit the cache):
``--repeat`` rounds of every value; the table gives the median and the worst change.  The machine's CPU
and load are printed with the table: run it with nothing else running.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TEACHKIT_OFFLINE", "1")

from streamlit.testing.v1 import AppTest  # noqa: E402
from machine import cpu_name  # noqa: E402  (benchmarks/machine.py)

from teachkit.lessons.pages import page as lesson_page  # noqa: E402

APP = str(ROOT / "app.py")


def session(page: int, lang: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=600)
    at.query_params["lang"] = lang
    at.run()
    if page != 1:
        at.switch_page(str(lesson_page(page).path)).run()
    problems = [e.value for e in at.exception] + [e.value for e in at.error]
    if problems:
        raise SystemExit(f"page {page} failed: {problems}")
    return at


def timed(at: AppTest, change) -> float:
    """Seconds from the widget change (set its value) to the end of the page's run."""
    t = time.perf_counter()
    change(at).run()
    seconds = time.perf_counter() - t
    problems = [e.value for e in at.exception] + [e.value for e in at.error]
    if problems:
        raise SystemExit(f"a control failed: {problems}")
    return seconds


def controls(lang: str):
    """(page, control, [changes]): each change is ``at -> widget with its new value set``."""
    from teachkit.lessons.charts import transfer_defaults, weight_options
    from teachkit.features import DEFAULT_STYLE_LAYERS

    layers = list(DEFAULT_STYLE_LAYERS)
    alpha = weight_options(transfer_defaults()["alpha"])
    beta = weight_options(transfer_defaults()["beta"])
    lam = weight_options(transfer_defaults()["layer_weights"][0], decades=2)
    return [
        (1, "layer", [lambda at, v=v: at.selectbox(key="p1_layer").set_value(v) for v in layers[1:3] + layers[:1]]),
        (1, "choose the unit", [lambda at, v=v: at.radio(key=f"p1_how__{lang}").set_value(v)
                                for v in ("most_varied", "most_active")]),
        (1, "unit", [lambda at, i=i: _unit(at, i) for i in (1, 2, 0)]),
        (1, "patch number", [lambda at, v=v: at.select_slider(key=_rank_key(at)).set_value(v) for v in (2, 3, 1)]),
        (1, "projector switch", [lambda at, v=v: at.sidebar.toggle(key="projector").set_value(v) for v in (True, False)]),
        (3, "α", [lambda at, v=v: at.select_slider(key="p3_alpha").set_value(v) for v in (alpha[5], alpha[4])]),
        (3, "β", [lambda at, v=v: at.select_slider(key="p3_beta").set_value(v) for v in (beta[3], beta[4])]),
        (4, "content layer", [lambda at, v=v: at.selectbox(key="p4_layer").set_value(v)
                              for v in ("relu3_2", "relu4_2")]),
        (5, "layer", [lambda at, v=v: at.selectbox(key="p5_layer").set_value(v) for v in ("relu2_1", "relu3_1")]),
        (5, "pair", [lambda at, v=v: at.radio(key=f"p5_pair__{lang}").set_value(v) for v in ("least", "most")]),
        (5, "compare S with", [lambda at, v=v: at.radio(key=f"p5_g__{lang}").set_value(v)
                               for v in ("noise", "style2", "content")]),
        (5, "λ (relu1_1)", [lambda at, v=v: at.select_slider(key="p5_lambda_relu1_1").set_value(v)
                            for v in (lam[4], lam[3])]),
        (5, "tiles", [lambda at, v=v: at.slider(key="p5_tiles").set_value(v) for v in (6, 4)]),
        (6, "size", [lambda at, v=v: at.slider(key="p6_size").set_value(v) for v in (128, 256)]),
    ]


def _unit(at: AppTest, i: int):
    """Lesson 1's unit box (relu1_1, most active, as the page opens) set to its ``i``-th unit."""
    box = at.selectbox(key="p1_unit_relu1_1_most_active")
    return box.set_value(int(str(box.options[i]).lstrip("#")))


def _rank_key(at: AppTest) -> str:
    return next(w.key for w in at.select_slider if (w.key or "").startswith("p1_rank_"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="rounds over each control's values (default 3)")
    ap.add_argument("--lang", default="en", choices=("en", "zh"))
    ap.add_argument("--no-warm-up", action="store_true", help="skip the app's warm-up (first changes then make figures)")
    args = ap.parse_args()

    import streamlit as st
    import torch

    from teachkit.lessons import resources

    print(f"# teachkit controls benchmark — {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"{cpu_name()}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, python "
          f"{platform.python_version()}, torch {torch.__version__}, streamlit {st.__version__}; load average "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    resources.load_net()
    if not args.no_warm_up:
        t = time.perf_counter()
        resources.warm_figures()
        resources.warm_controls()
        print(f"the app's warm-up (default figures, then those one control change away): "
              f"{time.perf_counter() - t:.1f} s")
    print(f"\n| lesson | control | changes | median (s) | worst (s) |\n|---|---|---|---|---|")
    worst_all = []
    for page, name, changes in controls(args.lang):
        at = session(page, args.lang)
        times = [timed(at, change) for _ in range(args.repeat) for change in changes]
        worst_all.append(max(times))
        print(f"| {page} | {name} | {len(times)} | {statistics.median(times):.2f} | {max(times):.2f} |", flush=True)
    print(f"\nload average at the end: {', '.join(f'{v:.1f}' for v in os.getloadavg())}", flush=True)


if __name__ == "__main__":
    main()
    os._exit(0)  # the app's background threads (atlas builder, warm-up) need no orderly shutdown here
