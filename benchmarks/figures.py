"""What a lesson figure costs to turn into PNG bytes: one drawing (now) against two (before).

    .venv/bin/python benchmarks/figures.py              # 5 repeats of each figure
    .venv/bin/python benchmarks/figures.py --repeats 9

``teachkit.viz.figure_png`` writes the figure's smallest text size into the PNG (the browser test
reads it).  It used to lay the figure out once to measure that size and then again inside
``savefig``; now it measures on savefig's own drawing and adds the value as a PNG text chunk.
For each default figure of lessons 1 and 5 (built afresh for every repeat, English, 14-px text),
this prints the median seconds of the two ways side by side, from one run, the smallest text each
wrote into its PNG (they must agree) and both PNG sizes: the pixels are not identical, because
matplotlib's layout engine runs once less and places some axes a few pixels differently.  The pages make each figure once per process
(lessons/resources.py), so this is the cost of a cold server's first visits and of its warm-up.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TEACHKIT_OFFLINE", "1")


def two_drawings(fig, dpi: int = 144) -> bytes:
    """The way before: lay out to measure the smallest text, then savefig (which draws again)."""
    from teachkit import viz

    smallest = viz.smallest_text_pt(fig)  # draws the figure
    meta = {} if smallest is None else {"teachkit:min_text_px": f"{smallest * dpi / 72:.2f}"}
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white", metadata=meta)
    return buf.getvalue()


def makers():
    """(name, a function that builds the figure afresh) for lesson 1's and lesson 5's default figures."""
    from teachkit.lessons import resources as res
    from teachkit import gram, viz
    from teachkit.features import DEFAULT_STYLE_LAYERS
    from teachkit.patches import get_atlas
    from teachkit.samples import DEFAULT_CONTENT, DEFAULT_STYLE

    net = res.load_net()
    atlas = get_atlas("sample", backbone=net, layers=DEFAULT_STYLE_LAYERS, k=9)
    unit = res.units(atlas, res.L1_LAYER, res.L1_HOW)[0]
    size = res.l5_size()
    style, content = res.sample(DEFAULT_STYLE, size), res.sample(DEFAULT_CONTENT, size)
    return [
        ("lesson 1: nine units per layer", lambda: viz.layer_overview_figure(
            atlas, None, n_units=9, how="most_active", columns=2, width=res.OVERVIEW_FIG_IN)),
        ("lesson 1: a unit's top patches", lambda: viz.unit_figure(
            atlas, None, res.L1_LAYER, unit, ncols=3, width=res.UNIT_FIG_IN)),
        ("lesson 1: where a patch sits", lambda: viz.activation_map_figure(
            atlas, None, res.L1_LAYER, unit, net, rank=0, stacked=True, width=res.MAP_FIG_IN)),
        ("lesson 5: two channels", lambda: gram.pair_figure(net, style, res.L5_LAYER)),
        ("lesson 5: Gram heatmaps", lambda: gram.gram_comparison_figure(net, style, content, res.L5_LAYER)),
    ]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    import torch
    from PIL import Image

    from teachkit import viz

    torch.set_num_threads(1)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    print(f"CPU: {cpu}, {os.cpu_count()} cores, 1 torch thread; median of {args.repeats} (each figure built afresh)")
    print("| figure | two drawings (before), s | one drawing (now), s | now / before | smallest text, px "
          "(before = now) | PNG size before / now |")
    print("|---|---|---|---|---|---|")
    ratios = []
    for name, make in makers():
        before, now = [], []
        for _ in range(args.repeats):  # interleaved, so that a busy moment hits both ways alike
            fig = make()
            t = time.perf_counter()
            old_png = two_drawings(fig)
            before.append(time.perf_counter() - t)
            fig = make()
            t = time.perf_counter()
            new_png = viz.figure_png(fig)
            now.append(time.perf_counter() - t)
        a, b = Image.open(io.BytesIO(old_png)), Image.open(io.BytesIO(new_png))
        text_a, text_b = a.info.get("teachkit:min_text_px"), b.info.get("teachkit:min_text_px")
        text = f"{text_a}" if text_a == text_b else f"{text_a} vs {text_b}: DIFFER"
        ratio = statistics.median(now) / statistics.median(before)
        ratios.append(ratio)
        print(f"| {name} | {statistics.median(before):.3f} | {statistics.median(now):.3f} | {ratio:.2f} | {text} | "
              f"{a.size[0]}x{a.size[1]} / {b.size[0]}x{b.size[1]} |")
    print(f"| median of the figures | | | {statistics.median(ratios):.2f} | | |")


if __name__ == "__main__":
    main()
