"""What each unit wants to see (teachkit.visualize): seconds per step and per unit for each layer, and the
issue's quality target -- the painted image's activation over the unit's top photo patch in the sample atlas
(>= 1.5x for relu3_1 and deeper), measured with the backbone itself on the saved PNG.

    .venv/bin/python benchmarks/visualize.py --live          # the default and lesson 1's live recipe, 3 units per layer
    .venv/bin/python benchmarks/visualize.py --live --timing 24   # step times only: 24 steps per layer and recipe

Units per layer: the first ``--units`` of 'most_active' then 'most_varied' (teachkit.patches.select_units),
the ones lesson 1 offers first.  Prints the CPU (benchmarks/machine.py) and the load average, since the
wall times follow whatever else the machine runs: s/step is the fastest and the median step of the
layer's runs, and the CPU seconds per step (process time, which other work barely moves; with one thread
it is what a quiet core takes); s/unit = CPU s/step x the recipe's steps / threads.
Results: benchmarks/RESULTS_visualize.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from machine import cpu_line  # noqa: E402


def units_for(atlas, layer: str, n: int) -> list[int]:
    from teachkit.patches import select_units

    out = select_units(atlas, layer, "most_active", (n + 1) // 2)
    return (out + [u for u in select_units(atlas, layer, "most_varied", n) if u not in out])[:n]


def run(net, atlas, layers, n_units: int, size: int, steps: int, folder: Path) -> list[dict]:
    from PIL import Image

    from teachkit.visualize import unit_activation, visualize

    rows = []
    for layer in layers:
        for unit in units_for(atlas, layer, n_units):
            cpu = time.process_time()
            r = visualize(net, layer, unit, size, steps)
            cpu = (time.process_time() - cpu) / r.steps  # CPU seconds per step: barely moved by other work
            path = folder / f"{layer}_{unit}_{size}px.png"
            r.image.save(path)
            with Image.open(path) as im:  # measured on the saved PNG, as a student's copy would be
                value = unit_activation(net, im.convert("RGB"), layer, unit)
            top = atlas.top(layer, unit)[0].value
            times = [b["elapsed"] - a["elapsed"] for a, b in zip(r.history[1:], r.history[2:])]
            rows.append({"layer": layer, "unit": unit, "seconds": r.seconds, "steps": r.steps, "value": value,
                         "top": top, "ratio": value / top, "fast": min(times), "median": statistics.median(times),
                         "cpu": cpu})
            print(f"  {layer:8s} #{unit:<4d} {size} px {r.steps} steps {r.seconds:6.1f} s (s/step fastest "
                  f"{min(times):.3f}, median {statistics.median(times):.3f}, CPU {cpu:.3f})  activation {value:9.4g}"
                  f"  top patch {top:9.4g}  ratio {value / top:6.2f}x", flush=True)
    return rows


def main() -> None:
    from teachkit.features import DEFAULT_STYLE_LAYERS, load_backbone
    from teachkit.patches import get_atlas
    from teachkit.visualize import DEFAULT_SIZE, DEFAULT_STEPS, LIVE_SIZE, LIVE_STEPS

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--units", type=int, default=3, help="units per layer (default 3)")
    ap.add_argument("--layers", default=",".join(DEFAULT_STYLE_LAYERS))
    ap.add_argument("--size", type=int, default=DEFAULT_SIZE)
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    ap.add_argument("--live", action="store_true",
                    help=f"also lesson 1's live recipe ({LIVE_SIZE} px, {LIVE_STEPS} steps)")
    ap.add_argument("--timing", type=int, metavar="N", help="step times only: N steps of each layer's first unit")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keep", metavar="DIR", help="keep the painted PNGs here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    net = load_backbone("vgg19", device="cpu")
    atlas = get_atlas("sample", backbone=net)
    layers = args.layers.split(",")
    print(cpu_line())
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    folder = Path(args.keep or tempfile.mkdtemp(prefix="teachkit-visualize-"))
    folder.mkdir(parents=True, exist_ok=True)
    recipes = [("default", args.size, args.steps)] + ([("live", LIVE_SIZE, LIVE_STEPS)] if args.live else [])
    results = {}
    for name, size, steps in recipes:
        print(f"{name} recipe: {size} px, {args.timing or steps} Adam steps")
        results[name] = run(net, atlas, layers, 1 if args.timing else args.units, size, args.timing or steps, folder)
    print(f"load average at end: {os.getloadavg()[0]:.1f}; images in {folder}")
    ratio_col = "" if args.timing else " {n}: ratio each |"
    head = "| layer | units |" + "".join(f" {n}: s/step fastest (median) / CPU | {n}: s/unit |" + ratio_col.format(n=n)
                                        for n in results)
    print("\n" + head + "\n|" + "---|" * (2 + (2 if args.timing else 3) * len(results)))
    for layer in layers:
        line = f"| {layer} | "
        for (name, size, steps), rows in zip(recipes, results.values()):
            mine = [r for r in rows if r["layer"] == layer]
            line = line if line.count("#") else line + ", ".join(f"#{r['unit']}" for r in mine) + " |"
            fast, each = min(r["fast"] for r in mine), " / ".join(f"{r['ratio']:.2f}x" for r in mine)
            cpu = statistics.median(r["cpu"] for r in mine)
            line += (f" {fast:.3f} ({statistics.median(r['median'] for r in mine):.3f}) / {cpu:.3f} |"
                     f" {cpu * steps / args.threads:.1f} |")
            line += "" if args.timing else f" {each} |"
        print(line)


if __name__ == "__main__":
    main()
