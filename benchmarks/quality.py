"""Quality benchmark of the style transfer: does the default weighting work for *any* pair?

A matrix of content photos x style images (teachkit's generated styles, and natural textures and
photos from scikit-image's bundled data), each pair run with one recipe (``--preset``, default
``quick``) at ``--size`` px, and two figures per pair computed from the backbone's activations --
independent of the normalisation the transfer used:

* style ratio  = geometric mean over relu1_1 ... relu5_1 of
  ``||Gh(G) - Gh(S)||^2 / ||Gh(C) - Gh(S)||^2`` with ``Gh`` = Gram matrix / number of positions:
  how much closer to S's style the result G got than the content photo C was (0: S's style
  exactly, 1: no closer than the photo);
* content ratio = ``||a(G) - a(C)||^2 / ||a(S~) - a(C)||^2`` at the content layer (relu4_2), with
  ``S~`` = S resized to C's size: how far G strayed from C's content, against an unrelated image.

Targets (issue 9): every pair with style ratio <= 0.25 and content ratio <= 0.5.

Writes a contact sheet (contents x styles) and the table (markdown), and prints the table::

    python benchmarks/quality.py                              # 4 x 8 at 256 px, preset quick
    python benchmarks/quality.py --contents chelsea --styles brick,waves --size 128   # a smoke run
    python benchmarks/quality.py --report benchmarks/.quality_last.json               # table again

Not a test: it takes minutes.  Times are wall seconds of the engine (``TransferResult.seconds``:
inputs loaded, net loaded once for all pairs) on whatever machine runs it; the CPU is printed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from machine import cpu_line  # noqa: E402  (benchmarks/machine.py; peers.py imports it from here)

CONTENTS = ("chelsea", "astronaut", "rocket", "motorcycle")
#: teachkit's generated styles, then scikit-image's natural textures (grey) and colour photos
STYLES = ("stained_glass", "swirls", "waves", "rings", "brick", "grass", "hubble_deep_field", "coffee")
STYLE_RATIO_MAX = 0.25
CONTENT_RATIO_MAX = 0.5
RATIO_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def load_picture(name: str, size: int):
    """A teachkit sample (or a file path), else an image of ``skimage.data`` by name, RGB, long side ``size``."""
    from teachkit.images import resize_long_side
    from teachkit.samples import CONTENT_SAMPLES, STYLE_SAMPLES, resolve_image

    if name in CONTENT_SAMPLES or name in STYLE_SAMPLES or os.path.exists(name):
        return resolve_image(name, size=size)
    import numpy as np
    import skimage.data
    from PIL import Image

    fn = getattr(skimage.data, name, None)
    if fn is None:
        raise SystemExit(f"unknown picture {name!r}: not a teachkit sample, a file, or a skimage.data image")
    arr = np.asarray(fn())
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    return resize_long_side(Image.fromarray(arr[..., :3].astype(np.uint8), "RGB"), size)


def ratios(net, content, style, result, content_layer: str = "relu4_2", layers=RATIO_LAYERS) -> dict:
    """The two figures of the issue for one result; images are ``(1, 3, H, W)`` tensors in [0, 1].

    ``style`` at any size; ``result`` at the content's size.  Computed in float32 on ``net``'s device.
    """
    import torch
    import torch.nn.functional as F

    def gram_hat(a):
        f = a[0].flatten(1).double()
        return (f @ f.T) / f.shape[1]

    dev = net.device
    with torch.no_grad():
        fc = net.extract(content.to(dev), [*layers, content_layer])
        fs = net.extract(style.to(dev), list(layers))
        fg = net.extract(result.to(dev), [*layers, content_layer])
        s_tilde = F.interpolate(style.to(dev), size=content.shape[-2:], mode="bilinear", align_corners=False,
                                antialias=True)
        fst = net.extract(s_tilde, [content_layer])
        per_layer = {}
        for l in layers:
            gs = gram_hat(fs[l])
            num = float((gram_hat(fg[l]) - gs).pow(2).sum())
            den = float((gram_hat(fc[l]) - gs).pow(2).sum())
            per_layer[l] = num / den if den > 0 else math.inf
        ac = fc[content_layer].double()
        c_num = float((fg[content_layer].double() - ac).pow(2).sum())
        c_den = float((fst[content_layer].double() - ac).pow(2).sum())
    style_ratio = math.exp(sum(math.log(max(v, 1e-30)) for v in per_layer.values()) / len(per_layer))
    return {"style_ratio": style_ratio, "content_ratio": c_num / c_den if c_den > 0 else math.inf,
            "style_per_layer": per_layer}


def run_matrix(args) -> dict:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from teachkit.features import load_backbone
    from teachkit.images import to_tensor
    from teachkit.transfer import TransferConfig, transfer

    overrides = {}
    if args.beta is not None:
        overrides["beta"] = args.beta
    config = TransferConfig.preset(args.preset, size=args.size, preview_every=0, dtype=args.dtype, **overrides)
    net = load_backbone("vgg19", device=args.device)
    out = {"machine": cpu_line(), "preset": args.preset, "size": args.size, "dtype": args.dtype, "config": None,
           "pairs": []}
    print(out["machine"], flush=True)
    for c_name in args.contents:
        c_img = load_picture(c_name, args.size)
        for s_name in args.styles:
            s_img = load_picture(s_name, args.size)
            res = transfer(c_img, s_img, config, backbone=net)
            out["config"] = res.config.to_dict()
            r = ratios(net, to_tensor(c_img), to_tensor(s_img), res.tensor)
            row = {"content": c_name, "style": s_name, "seconds": res.seconds, **r,
                   "image": res.image, "weights": res.weights}
            out["pairs"].append(row)
            if args.pairs_dir:  # each pair as it comes: parts of the matrix can run in parallel (--merge)
                os.makedirs(args.pairs_dir, exist_ok=True)
                stem = os.path.join(args.pairs_dir, f"{c_name}__{s_name}")
                res.image.save(stem + ".png")
                with open(stem + ".json", "w") as f:
                    json.dump({k: v for k, v in row.items() if k != "image"} | {"machine": out["machine"],
                              "preset": args.preset, "size": args.size, "dtype": args.dtype}, f)
            print(f"{c_name:>11} x {s_name:<18} style {r['style_ratio']:.3f}  content {r['content_ratio']:.3f}  "
                  f"{res.seconds:5.1f} s", flush=True)
    return out


def contact_sheet(out: dict, path: str, thumbs: dict) -> None:
    """Contents down, styles across; each result captioned with its two ratios."""
    from matplotlib.figure import Figure

    contents = list(dict.fromkeys(p["content"] for p in out["pairs"]))
    styles = list(dict.fromkeys(p["style"] for p in out["pairs"]))
    cell = 1.6
    fig = Figure(figsize=(cell * (len(styles) + 1), cell * (len(contents) + 1) + 0.5), layout="constrained")
    axes = fig.subplots(len(contents) + 1, len(styles) + 1, squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(False)
    for j, s in enumerate(styles, start=1):
        axes[0][j].imshow(thumbs[s])
        axes[0][j].set_title(s, fontsize=8)
    for i, c in enumerate(contents, start=1):
        axes[i][0].imshow(thumbs[c])
        axes[i][0].set_ylabel(c, fontsize=8)
    by_pair = {(p["content"], p["style"]): p for p in out["pairs"]}
    for i, c in enumerate(contents, start=1):
        for j, s in enumerate(styles, start=1):
            p = by_pair.get((c, s))
            if p is None:
                continue
            axes[i][j].imshow(p["image"])
            ok = p["style_ratio"] <= STYLE_RATIO_MAX and p["content_ratio"] <= CONTENT_RATIO_MAX
            axes[i][j].set_xlabel(f"s {p['style_ratio']:.2f}  c {p['content_ratio']:.2f}", fontsize=7,
                                  color="black" if ok else "tab:red")
    fig.suptitle(f"teachkit transfer, preset '{out['preset']}', {out['size']} px: style ratio (s) and content "
                 f"ratio (c) under each result (targets s <= {STYLE_RATIO_MAX}, c <= {CONTENT_RATIO_MAX})",
                 fontsize=8)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=85)


def table(out: dict) -> str:
    pairs = out["pairs"]
    contents = list(dict.fromkeys(p["content"] for p in pairs))
    styles = list(dict.fromkeys(p["style"] for p in pairs))
    by_pair = {(p["content"], p["style"]): p for p in pairs}
    lines = [f"Machine: {out['machine']}", f"Recipe: preset `{out['preset']}` at {out['size']} px, dtype {out.get('dtype', 'auto')}.", "",
             "Each cell: style ratio / content ratio (targets <= 0.25 / <= 0.5; a `!` marks a miss).", "",
             "| content \\ style | " + " | ".join(styles) + " |", "|---|" + "---|" * len(styles)]
    for c in contents:
        cells = []
        for s in styles:
            p = by_pair.get((c, s))
            if p is None:
                cells.append("-")
                continue
            miss = p["style_ratio"] > STYLE_RATIO_MAX or p["content_ratio"] > CONTENT_RATIO_MAX
            cells.append(f"{p['style_ratio']:.2f} / {p['content_ratio']:.2f}" + (" !" if miss else ""))
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    sr = [p["style_ratio"] for p in pairs]
    cr = [p["content_ratio"] for p in pairs]
    secs = [p["seconds"] for p in pairs]
    ok = sum(p["style_ratio"] <= STYLE_RATIO_MAX and p["content_ratio"] <= CONTENT_RATIO_MAX for p in pairs)
    lines += ["", f"Pairs meeting both targets: **{ok} / {len(pairs)}**.  Style ratio median {statistics.median(sr):.3f}, "
              f"max {max(sr):.3f}; content ratio median {statistics.median(cr):.3f}, max {max(cr):.3f}; "
              f"engine time per pair median {statistics.median(secs):.1f} s (max {max(secs):.1f} s)."]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--contents", type=lambda t: t.split(","), default=list(CONTENTS))
    ap.add_argument("--styles", type=lambda t: t.split(","), default=list(STYLES))
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--beta", type=float, default=None, help="override the preset's beta (tuning)")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--sheet", default=os.path.join(ROOT, "docs", "quality_sheet.png"))
    ap.add_argument("--results", default=None, help="also write the table into this markdown file")
    ap.add_argument("--json", default=os.path.join(HERE, ".quality_last.json"))
    ap.add_argument("--report", default=None, help="print the table of a saved --json run")
    ap.add_argument("--pairs-dir", default=None, help="also save every pair (PNG + JSON) into this folder")
    ap.add_argument("--merge", default=None, metavar="DIR",
                    help="no run: the sheet and table of the pairs saved in DIR (by parallel --pairs-dir runs)")
    args = ap.parse_args(argv)
    if args.merge:
        from PIL import Image

        pairs = []
        for name in sorted(os.listdir(args.merge)):
            if name.endswith(".json"):
                with open(os.path.join(args.merge, name)) as f:
                    p = json.load(f)
                p["image"] = Image.open(os.path.join(args.merge, name[:-5] + ".png")).convert("RGB")
                pairs.append(p)
        order = {n: i for i, n in enumerate([*CONTENTS, *STYLES])}
        pairs.sort(key=lambda p: (order.get(p["content"], 99), order.get(p["style"], 99)))
        first = pairs[0]
        out = {"machine": first["machine"], "preset": first["preset"], "size": first["size"],
               "dtype": first["dtype"], "pairs": pairs}
        args.contents = list(dict.fromkeys(p["content"] for p in pairs))
        args.styles = list(dict.fromkeys(p["style"] for p in pairs))
        return _finish(args, argv, out, time.perf_counter())
    if args.report:
        with open(args.report) as f:
            print(table(json.load(f)))
        return 0
    t0 = time.perf_counter()
    return _finish(args, argv, run_matrix(args), t0)


def _finish(args, argv, out: dict, t0: float) -> int:
    thumbs = {n: load_picture(n, 128) for n in [*args.contents, *args.styles]}
    if args.sheet:
        contact_sheet(out, args.sheet, thumbs)
        print(f"wrote {args.sheet}")
    for p in out["pairs"]:
        p.pop("image")
    out["wall_seconds"] = time.perf_counter() - t0
    text = table(out)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    if args.results:
        with open(args.results, "w") as f:
            f.write("# Quality benchmark (benchmarks/quality.py): measured figures\n\n")
            f.write("Command: `" + " ".join(["python", "benchmarks/quality.py", *(argv or sys.argv[1:])]) + "`\n\n")
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
