"""The ``teachkit`` command: ``teachkit transfer | layers | patches | gram | reconstruct``.

Each sub-command has its own section below: ``add_<name>_parser`` declares its options and
``cmd_<name>`` runs it; :data:`COMMANDS` at the end lists the ``add_*_parser`` functions, one line
each.  Errors a user can fix (a bad image, an unknown layer, a missing weight file) are printed on
stderr as one line, with exit code 2 and no traceback.
"""

from __future__ import annotations

import argparse
import sys

from .fileio import check_int
from .prepare import add_prepare_parser

__all__ = ["main", "build_parser"]


class UsageError(Exception):
    """A problem with the user's input, reported as one line with exit code 2."""


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _csv_of(convert, what: str):
    """An argparse ``type``: a comma-separated list, each item converted by ``convert``."""

    def parse(text: str) -> list:
        try:
            return [convert(t) for t in _csv(text)]
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}") from exc

    return parse


_floats = _csv_of(float, "numbers")
_ints = _csv_of(int, "whole numbers")


# ---- teachkit layers ---------------------------------------------------------------------------


def add_layers_parser(sub) -> None:
    p = sub.add_parser("layers", help="table of a backbone's layers: channels, stride, receptive field")
    p.add_argument("--backbone", default="vgg19")
    p.set_defaults(func=cmd_layers)


def cmd_layers(args) -> int:
    from .features import load_backbone
    from .receptive_field import format_layer_table, layer_table

    net = load_backbone(args.backbone, device="cpu")
    print(f"{net.name}: {net.description}")
    print(format_layer_table(layer_table(net.body, net.channels)))
    return 0


# ---- teachkit transfer -------------------------------------------------------------------------


def add_transfer_parser(sub) -> None:
    from .costs import NORMALIZATIONS
    from .transfer import DTYPES, INITS, OPTIMIZERS, PRESETS, TransferConfig

    d = TransferConfig()
    quick = PRESETS["quick"]

    def dflt(name: str) -> str:  # "(default: X; quick: Y)" for the fields a preset sets
        q = quick.get(name)
        q = ",".join(map(str, q)) if isinstance(q, tuple) else q
        v = getattr(d, name)
        return f"(default: {'automatic' if v is None else v}" + (f"; --preset quick: {q})" if name in quick else ")")

    p = sub.add_parser(
        "transfer",
        help="neural style transfer: J(G) = alpha J_content(C,G) + beta J_style(S,G), by gradient descent on G",
        description=(
            "Paint the CONTENT photo in the style of STYLE (several styles are blended) by gradient "
            "descent on the pixels. Without images the bundled samples are used. CONTENT and STYLE "
            "may be file paths or sample names (teachkit.samples.list_samples()). Defaults not shown "
            "depend on --normalization; with the default 'auto' the weights are relative and the "
            "lambda[l] actually used are printed at the end."
        ),
    )
    p.add_argument("content", nargs="?", default=None, help="content image (default: the sample 'chelsea')")
    p.add_argument("styles", nargs="*", default=[], help="style image(s) (default: the sample 'stained_glass')")
    p.add_argument("-o", "--output", default="transfer.png", help="where to write the result (default: %(default)s)")
    p.add_argument("--preset", choices=tuple(PRESETS), default="default",
                   help="named recipe: 'quick' is the classroom one (256 px, seconds on a laptop); "
                        "options given explicitly override it (default: %(default)s)")
    p.add_argument("--size", type=int, default=None, help=f"long side of the result in px {dflt('size')}")
    p.add_argument("--steps", type=int, default=None, help=f"optimiser steps over all scales {dflt('steps')}")
    p.add_argument("--alpha", type=float, default=None, help="content weight")
    p.add_argument("--beta", type=float, default=None, help="style weight")
    p.add_argument("--content-layer", default=d.content_layer, help="(default: %(default)s)")
    p.add_argument("--style-layers", type=_csv, default=None,
                   help=f"comma list (default: {','.join(d.style_layers)})")
    p.add_argument("--layer-weights", type=_floats, default=None,
                   help="lambda[l] (with --normalization auto: relative weights w[l]), one per style layer")
    p.add_argument("--style-weights", type=_floats, default=None, help="blend weights, one per style image")
    p.add_argument("--style-scale", type=float, default=d.style_scale,
                   help="style image size relative to the result (default: %(default)s)")
    p.add_argument("--normalization", choices=NORMALIZATIONS, default=d.normalization,
                   help="constants in front of the costs; 'auto' measures each term against its own "
                        "size, so the weights fit any style image (default: %(default)s)")
    p.add_argument("--init", choices=INITS, default=None,
                   help=f"starting image: the content blended with white noise, white noise (the lecture's), "
                        f"or the content {dflt('init')}")
    p.add_argument("--init-noise", type=float, default=None,
                   help=f"noise share for --init blend {dflt('init_noise')}")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer, help="(default: %(default)s)")
    p.add_argument("--lr", type=float, default=None, help="step length (default: 1 for lbfgs, 0.02 for adam)")
    p.add_argument("--tv", type=float, default=None, dest="tv_weight", help="total-variation weight")
    p.add_argument("--preserve-color", action="store_true", help="transfer luminance only; keep the content's colours")
    p.add_argument("--scales", type=_ints, default=None,
                   help=f"coarse-to-fine long sides, e.g. 128,256,512 {dflt('scales')}")
    p.add_argument("--scale-steps", type=_ints, default=None,
                   help=f"steps per scale, one per scale (overrides --steps) {dflt('scale_steps')}")
    p.add_argument("--pyramid", type=int, default=None, metavar="LEVELS",
                   help="optimise the image as a sum of LEVELS resolutions; 1 = plain pixels (default: automatic)")
    p.add_argument("--seed", type=int, default=d.seed, help="(default: %(default)s)")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: automatic)")
    p.add_argument("--dtype", choices=DTYPES, default=d.dtype,
                   help="'auto': bfloat16 where the CPU runs it natively, else float32 (default: %(default)s)")
    p.add_argument("--force-dtype", action="store_true",
                   help="use --dtype bfloat16 even on a CPU that only emulates it (many times slower)")
    p.add_argument("--backbone", default=d.backbone, help="(default: %(default)s)")
    p.add_argument("--pooling", choices=("max", "avg"), default=d.pooling, help="(default: %(default)s)")
    p.add_argument("--save-every", metavar="DIR", default=None,
                   help="save the intermediate images into DIR (every --preview-every steps)")
    p.add_argument("--preview-every", type=int, default=d.preview_every, metavar="N",
                   help="intermediate image every N steps (default: %(default)s)")
    p.add_argument("--log", metavar="FILE.json", default=None, help="write config, cost history and timings as JSON")
    p.add_argument("--plot", metavar="FILE.png", default=None, help="plot the cost terms over the steps")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_transfer)


def _transfer_config(args):
    """The TransferConfig of the command line: the preset, then every option given explicitly."""
    from .transfer import TransferConfig

    fields = {
        "size": args.size, "steps": args.steps, "alpha": args.alpha, "beta": args.beta,
        "content_layer": args.content_layer, "layer_weights": args.layer_weights,
        "style_weights": args.style_weights, "style_scale": args.style_scale,
        "normalization": args.normalization, "init": args.init, "init_noise": args.init_noise,
        "optimizer": args.optimizer, "lr": args.lr, "tv_weight": args.tv_weight,
        "preserve_color": args.preserve_color, "scales": args.scales, "scale_steps": args.scale_steps,
        "pyramid": args.pyramid, "seed": args.seed, "device": args.device, "dtype": args.dtype,
        "force_dtype": args.force_dtype, "backbone": args.backbone, "pooling": args.pooling,
        "preview_every": args.preview_every,
    }
    if args.style_layers is not None:
        fields["style_layers"] = tuple(args.style_layers)
    for key in ("layer_weights", "style_weights", "scales", "scale_steps"):
        if fields[key] is not None:
            fields[key] = tuple(fields[key])
    # the preset's fields are defaults: every option given explicitly wins (see TransferConfig.preset)
    return TransferConfig.preset(args.preset, **{k: v for k, v in fields.items() if v is not None})


def _weights_line(weights: dict) -> str:
    lam = ", ".join(f"{l} {v:.3g}" for l, v in weights["layer_weights"].items())
    return (f"weights used: alpha {weights['alpha']:.3g}, beta {weights['beta']:.3g}, "
            f"lambda[l]: {lam or '-'}, w_tv {weights['tv_weight']:.3g}")


def cmd_transfer(args) -> int:
    import dataclasses
    import warnings
    from pathlib import Path

    from .features import load_backbone
    from .images import check_output_path, save_image
    from .samples import DEFAULT_CONTENT, DEFAULT_STYLE
    from .transfer import SlowDtypeWarning, choose_dtype, load_inputs, transfer

    # 1. everything that can be checked is checked before the long work
    content = args.content if args.content is not None else DEFAULT_CONTENT
    styles = list(args.styles) or [DEFAULT_STYLE]
    inputs = [content, *styles]
    out = check_output_path(args.output, inputs=inputs)
    plot_path = check_output_path(args.plot, "figure", inputs=inputs) if args.plot else None
    log_path = check_output_path(args.log, "json", inputs=inputs) if args.log else None
    save_dir = None
    if args.save_every:
        save_dir = Path(args.save_every).expanduser()
        if save_dir.exists() and not save_dir.is_dir():
            raise UsageError(f"cannot save intermediate images into '{args.save_every}': it is a file, not a folder")
        check_output_path(save_dir / "step_0000.png")
        if args.preview_every <= 0:
            raise UsageError("--save-every needs --preview-every N with N > 0")

    config = _transfer_config(args)
    config.resolved(len(styles))  # ValueError on a bad option
    content_img, style_imgs = load_inputs(content, styles, config)  # ImageError on a bad image
    if config.size is None:
        config = dataclasses.replace(config, size=max(content_img.size))
    net = load_backbone(config.backbone, pooling=config.pooling, device=config.device)
    net.check_layers([config.content_layer, *config.style_layers])  # ValueError naming the layer
    _, dtype_warning = choose_dtype(config.dtype, net.device, config.force_dtype)
    if dtype_warning:
        print(f"teachkit: warning: {dtype_warning}", file=sys.stderr)

    # 2. the long work, with a progress bar; Ctrl-C returns the latest image
    reporter = None
    if not args.quiet:
        from .progress import TqdmReporter

        reporter = TqdmReporter(desc="transfer", keys=("total", "content", "style"), file=sys.stderr)

    def callback(p):
        if reporter is not None:
            reporter(p)
        if save_dir is not None and p.image is not None:
            save_image(p.image, save_dir / f"step_{p.step:04d}.png")

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SlowDtypeWarning)  # said once, above
            result = transfer(content_img, style_imgs, config, callback=callback, backbone=net)
    finally:
        if reporter is not None:
            reporter.close()

    # 3. write what there is
    save_image(result.image, out)
    w, h = result.image.size
    steps = len(result.history)
    if result.stopped:
        print(f"interrupted after {steps} steps: wrote the latest image to {out} ({w}x{h})")
    else:
        print(f"wrote {out} ({w}x{h}, {steps} steps, {result.seconds:.1f} s, J = {result.costs.get('total', 0):.4g})")
    print(_weights_line(result.weights))
    if log_path is not None:
        result.save_log(log_path)
        print(f"wrote the log to {log_path}")
    if plot_path is not None and result.history:
        from .viz import plot_history, save_figure

        save_figure(plot_history(result.history, layers=True, weighted=True, config=result.effective_config()),
                    plot_path)
        print(f"wrote the cost plot to {plot_path}")
    return 130 if result.stopped else 0


# ---- teachkit patches --------------------------------------------------------------------------


def add_patches_parser(sub) -> None:
    p = sub.add_parser(
        "patches",
        help="which image patches make a unit (one channel of a layer) fire: scan, show, overview, merge",
        description="Scan a dataset once, keep every unit's top-k patches in an atlas file, then draw "
        "one unit's patches (show) or a few units of several layers side by side (overview). The atlases "
        "of the parts of a scan (--shard) are put together with merge.",
    )
    psub = p.add_subparsers(dest="patches_command", required=True)

    s = psub.add_parser("scan", help="scan a dataset and write an atlas of every unit's top patches")
    s.add_argument("--data", default="sample",
                   help="'sample' (bundled photos, default), a folder of images, or cifar10[:ROOT[:SPLIT]]")
    s.add_argument("--backbone", default="vgg19")
    s.add_argument("--layers", type=_csv, default=None,
                   help="comma-separated layers (default relu1_1,relu2_1,relu3_1,relu4_1,relu5_1)")
    s.add_argument("--k", type=int, default=9, help="patches kept per unit (default 9)")
    s.add_argument("--image-size", type=int, default=None,
                   help="side the images are scanned at (default 112)")
    s.add_argument("--batch-size", type=int, default=16)
    s.add_argument("--positions-per-image", type=int, default=1,
                   help="distinct positions one image may give a unit (default 1)")
    s.add_argument("--shard", default=None,
                   help="scan only part PART of PARTS, written as PART/PARTS (needs --out)")
    s.add_argument("--device", default=None)
    s.add_argument("--out", "-o", default=None,
                   help="atlas file to write (.npz); the cache is used either way")
    s.add_argument("--cache-dir", default=None, help="atlas cache folder (default $TEACHKIT_CACHE/atlases "
                   "or ~/.cache/teachkit/atlases)")
    s.add_argument("--rescan", action="store_true", help="scan even if the cache has this atlas")
    s.set_defaults(func=cmd_patches_scan)

    sh = psub.add_parser("show", help="one unit's top patches in a grid")
    sh.add_argument("atlas", help="atlas file written by 'teachkit patches scan'")
    sh.add_argument("--layer", required=True)
    sh.add_argument("--unit", type=int, required=True, help="channel number (from 0)")
    sh.add_argument("--out", "-o", required=True, help="image file to write (png/jpg/pdf/svg)")
    sh.add_argument("--map", default=None, metavar="FILE",
                    help="also draw the unit's activation map over its best image into FILE")
    sh.add_argument("--data", default=None, help="where the atlas's images are now, if they moved")
    sh.set_defaults(func=cmd_patches_show)

    ov = psub.add_parser("overview", help="a few units per layer, layers side by side")
    ov.add_argument("atlas", help="atlas file written by 'teachkit patches scan'")
    ov.add_argument("--out", "-o", required=True, help="image file to write (png/jpg/pdf/svg)")
    ov.add_argument("--layers", type=_csv, default=None,
                    help="comma-separated layers (default: all in the atlas)")
    ov.add_argument("--units", type=int, default=4, help="units per layer (default 4)")
    ov.add_argument("--how", default="most_active", choices=("most_active", "most_varied", "index"),
                    help="how units are chosen (default most_active)")
    ov.add_argument("--data", default=None, help="where the atlas's images are now, if they moved")
    ov.set_defaults(func=cmd_patches_overview)

    mg = psub.add_parser("merge", help="one atlas from several: the shards of 'scan --shard', or different datasets")
    mg.add_argument("atlases", nargs="+", metavar="ATLAS", help="atlas files written by 'teachkit patches scan'")
    mg.add_argument("--out", "-o", required=True, help="atlas file to write (.npz)")
    mg.set_defaults(func=cmd_patches_merge)


def _check_figure_path(path: str, inputs=()):
    from .images import check_output_path

    return check_output_path(path, "figure", inputs=inputs)


def _atlas_and_data(args):
    from .patches import Atlas

    atlas = Atlas.load(args.atlas)
    try:
        ds = atlas.open_dataset(args.data)
    except FileNotFoundError as exc:
        raise UsageError(f"{exc} (if the images moved, give their new place with --data)") from None
    return atlas, ds


def cmd_patches_scan(args) -> int:
    import signal
    import threading
    import time

    from .datasets import get_dataset
    from .features import load_backbone
    from .images import check_output_path
    from .patches import DEFAULT_IMAGE_SIZE, get_atlas, scan
    from .progress import TqdmReporter

    shard = None
    if args.shard:
        try:
            part, parts = (int(v) for v in args.shard.split("/"))
        except ValueError:
            raise UsageError(f"--shard must look like 0/4, not {args.shard!r}") from None
        if not args.out:
            raise UsageError("--shard needs --out (a part of a dataset is not cached)")
        shard = (part, parts)
    if args.out:
        check_output_path(args.out, "npz")
    data = get_dataset(args.data)  # a wrong folder fails now, before the network loads
    net = load_backbone(args.backbone, device=args.device)
    bar = TqdmReporter(desc="scan", unit="img")
    stop = threading.Event()
    old = None
    if threading.current_thread() is threading.main_thread():
        def on_ctrl_c(signum, frame):  # first Ctrl-C: stop and keep what was scanned
            stop.set()
            signal.signal(signal.SIGINT, old)
        old = signal.signal(signal.SIGINT, on_ctrl_c)
    t0 = time.perf_counter()
    try:
        if shard is not None:
            atlas = scan(net, data, args.layers, k=args.k,
                         image_size=args.image_size or DEFAULT_IMAGE_SIZE,
                         positions_per_image=args.positions_per_image, batch_size=args.batch_size,
                         shard=shard, callback=bar, stop=stop)
        else:
            atlas = get_atlas(data, net, args.layers, k=args.k, image_size=args.image_size,
                              callback=bar, cache_dir=args.cache_dir,
                              positions_per_image=args.positions_per_image, batch_size=args.batch_size,
                              stop=stop, rescan=args.rescan)
    finally:
        bar.close()
        if old is not None:
            signal.signal(signal.SIGINT, old)
    m = atlas.meta
    print(f"atlas: {m['backbone']} on {m['dataset_name']}: {m['n_images']} images at {m['image_size']} px, "
          f"k={m['k']}, layers {', '.join(m['layers'])} ({time.perf_counter() - t0:.1f} s)")
    if m["n_skipped"]:
        print(f"skipped {m['n_skipped']} unreadable image(s): {', '.join(m['skipped'][:10])}"
              + (" ..." if m["n_skipped"] > 10 else ""))
    if args.out:
        print(f"saved to {atlas.save(args.out)}")
    elif atlas.path is not None:
        print(f"cached at {atlas.path}")
    if stop.is_set():
        print("stopped early: the atlas is partial" + ("" if args.out else " and was not saved"),
              file=sys.stderr)
        return 130
    return 0


def cmd_patches_show(args) -> int:
    from .viz import activation_map_figure, save_figure, unit_figure

    _check_figure_path(args.out)
    if args.map:
        _check_figure_path(args.map)
    atlas, ds = _atlas_and_data(args)
    fig = unit_figure(atlas, ds, args.layer, args.unit)
    print(f"{atlas.unit_label(args.layer, args.unit)}: {save_figure(fig, args.out)}")
    if args.map:
        fig = activation_map_figure(atlas, ds, args.layer, args.unit)
        print(f"activation map: {save_figure(fig, args.map)}")
    return 0


def cmd_patches_overview(args) -> int:
    from .viz import layer_overview_figure, save_figure

    _check_figure_path(args.out)
    check_int("--units", args.units, 1)
    atlas, ds = _atlas_and_data(args)
    fig = layer_overview_figure(atlas, ds, args.layers, args.units, how=args.how)
    print(f"overview of {', '.join(args.layers or atlas.layers)}: {save_figure(fig, args.out)}")
    return 0



def cmd_patches_merge(args) -> int:
    from .images import check_output_path
    from .patches import Atlas, merge

    if len(args.atlases) < 2:
        raise UsageError("patches merge needs at least two atlas files")
    out = check_output_path(args.out, "npz", inputs=args.atlases)
    atlas = Atlas.load(args.atlases[0])
    for path in args.atlases[1:]:
        try:
            atlas = merge(atlas, Atlas.load(path))
        except ValueError as exc:
            raise UsageError(f"cannot merge {path!r}: {exc}") from None
    m = atlas.meta
    print(f"atlas: {m['backbone']} on {m['dataset_name']}: images {m['start']}..{m['end']} "
          f"of {m['dataset_size']}, k={m['k']}, layers {', '.join(m['layers'])}")
    print(f"saved to {atlas.save(out)}")
    return 0


# ---- teachkit gram ----------------------------------------------------------------------------

_GRAM_COMMANDS = ("show", "pair", "shuffle")


def _gram_shorthand(argv: list[str]) -> list[str]:
    """Let ``teachkit gram IMAGE ...`` mean ``teachkit gram show IMAGE ...``."""
    if len(argv) > 1 and argv[0] == "gram" and argv[1] not in (*_GRAM_COMMANDS, "-h", "--help"):
        return ["gram", "show", *argv[1:]]
    return argv


def _gram_common(p, layer: str, size: int = 256) -> None:
    p.add_argument("--layer", default=layer, help=f"layer to look at (default {layer})")
    p.add_argument("--size", type=int, default=size, help=f"long side the images are scaled to (default {size})")
    p.add_argument("--backbone", default="vgg19")
    p.add_argument("--device", default=None)
    p.add_argument("--out", "-o", required=True, help="figure to write (png/jpg/pdf/svg)")


def add_gram_parser(sub) -> None:
    p = sub.add_parser(
        "gram",
        help="Gram matrices (style = correlation between channels): show, pair, shuffle",
        description="Look at the Gram matrix G[l]_kk' = sum_ij a_ijk a_ijk' of a layer.\n\n"
        "  teachkit gram show IMAGE [IMAGE2] -o gram.png   one image: G and the channel correlation;\n"
        "                                                  two (S then G): G(S), G(G), their difference\n"
        "                                                  and J_style[l]\n"
        "  teachkit gram IMAGE [IMAGE2] -o gram.png        the same (shorthand for 'show')\n"
        "  teachkit gram pair IMAGE -o pair.png            one entry G_kk' taken apart: map k, map k',\n"
        "                                                  their product, whose sum is G_kk'\n"
        "  teachkit gram shuffle IMAGE -o shuffle.png      shuffle the image's tiles: the Gram matrix\n"
        "                                                  hardly changes, the feature maps do\n\n"
        "IMAGE is a file or a sample name (chelsea, astronaut, ..., stained_glass, swirls, ...); "
        "an image file called show/pair/shuffle needs the explicit form 'gram show ./pair'.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gsub = p.add_subparsers(dest="gram_command", required=True, metavar="{show,pair,shuffle}")

    s = gsub.add_parser("show", help="heatmaps of G (one image) or G(S), G(G), difference (two images)")
    s.add_argument("images", nargs="+", metavar="IMAGE", help="one image, or two: the style image S, then G")
    _gram_common(s, "relu2_1")
    s.add_argument("--channels", type=int, default=32,
                   help="show the N most energetic channels (default 32), correlated ones together")
    s.add_argument("--full", action="store_true", help="show every channel")
    s.add_argument("--normalization", default="lecture", choices=("lecture", "gatys", "none"),
                   help="constant of J_style[l] (default lecture: 1/(2 n_H n_W n_C))")
    s.set_defaults(func=cmd_gram_show)

    pr = gsub.add_parser("pair", help="two channels' maps, their product, and its sum = G_kk'")
    pr.add_argument("image", metavar="IMAGE")
    _gram_common(pr, "relu3_1")
    pr.add_argument("--channels", type=int, nargs=2, metavar=("K", "K2"), default=None,
                    help="the two channels (default: the most correlated active pair)")
    which = pr.add_mutually_exclusive_group()
    which.add_argument("--most", dest="which", action="store_const", const="most",
                       help="pick the most correlated pair of active channels (default)")
    which.add_argument("--least", dest="which", action="store_const", const="least",
                       help="pick the least (most negatively) correlated pair")
    pr.set_defaults(func=cmd_gram_pair, which="most")

    sh = gsub.add_parser("shuffle", help="shuffle tiles: the Gram matrix forgets positions, features do not")
    sh.add_argument("image", metavar="IMAGE")
    _gram_common(sh, "relu2_1")
    sh.add_argument("--content-layer", default="relu4_2", help="layer for the feature difference (default relu4_2)")
    sh.add_argument("--tiles", type=int, default=2, help="tiles per side (default 2)")
    sh.add_argument("--seed", type=int, default=0)
    sh.set_defaults(func=cmd_gram_shuffle)


def add_reconstruct_parser(sub) -> None:
    r = sub.add_parser(
        "reconstruct",
        help="what each layer keeps: images rebuilt from white noise (content) or textures (style)",
        description="content: rebuild IMAGE from white noise using one layer's activation, for each "
        "layer (shallow layers keep the pixels, deep ones the objects).  style: textures from white noise "
        "matching the Gram matrices of the layers up to each of --layers in turn (the growing scale "
        "of texture).  IMAGE is a file or a sample name.",
    )
    r.add_argument("kind", choices=("content", "style"), help="content reconstruction or texture (style)")
    r.add_argument("image", metavar="IMAGE")
    r.add_argument("--layers", type=_csv, default=None,
                   help="comma-separated layers, one column each (default relu1_1,relu2_1,relu3_1,relu4_1,relu5_1)")
    r.add_argument("--size", type=int, default=None, help="long side in pixels (default 96)")
    r.add_argument("--steps", type=int, default=None,
                   help="cost evaluations per column (default 100)")
    r.add_argument("--seed", type=int, default=0, help="seed of the starting white noise (default 0)")
    r.add_argument("--backbone", default="vgg19")
    r.add_argument("--pooling", default="max", choices=("max", "avg"))
    r.add_argument("--device", default=None)
    r.add_argument("--out", "-o", required=True, help="figure to write (png/jpg/pdf/svg)")
    r.set_defaults(func=cmd_reconstruct)


def cmd_gram_show(args) -> int:
    from .features import load_backbone
    from .gram import gram_comparison, gram_comparison_figure, gram_figure, gram_summary
    from .samples import resolve_image
    from .viz import save_figure

    if len(args.images) > 2:
        raise UsageError(f"gram show takes one or two images, not {len(args.images)}")
    check_int("--channels", args.channels, 1)
    check_int("--size", args.size, 16)
    out = _check_figure_path(args.out, args.images)
    imgs = [resolve_image(i, args.size) for i in args.images]
    net = load_backbone(args.backbone, device=args.device)
    net.check_layers([args.layer])
    if len(imgs) == 1:
        s = gram_summary(net, imgs[0], args.layer, args.channels, args.full)
        fig = gram_figure(net, imgs[0], args.layer, args.channels, args.full, summary=s)
        n_C, n_H, n_W = s["shape"]
        print(f"{args.layer}: {n_C} channels, {n_H}x{n_W} positions; G is {n_C}x{n_C}")
    else:
        c = gram_comparison(net, imgs[0], imgs[1], args.layer, args.channels, args.normalization, args.full)
        fig = gram_comparison_figure(net, imgs[0], imgs[1], args.layer, comparison=c)
        print(f"{args.layer}: J_style[l](S, G) = {c['j_style']:.6g} ({args.normalization})")
    save_figure(fig, out)
    print(f"wrote {out}")
    return 0


def cmd_gram_pair(args) -> int:
    from .features import load_backbone
    from .gram import layer_activation, pair_explainer, pair_figure, pick_pair, to_input
    from .viz import save_figure

    check_int("--size", args.size, 16)
    out = _check_figure_path(args.out, [args.image])
    x = to_input(args.image, args.size)
    net = load_backbone(args.backbone, device=args.device)
    net.check_layers([args.layer])
    if args.channels:
        k, k2 = args.channels
    else:
        k, k2, _ = pick_pair(layer_activation(net, x, args.layer), args.which)
    e = pair_explainer(net, x, args.layer, k, k2)
    fig = pair_figure(net, x, args.layer, explained=e)
    print(f"{args.layer} channels {k}, {k2}: sum of the product = {e['product_sum']:.6g}, "
          f"G_kk' = {e['gram']:.6g}, correlation {e['correlation']:+.3f}")
    save_figure(fig, out)
    print(f"wrote {out}")
    return 0


def cmd_gram_shuffle(args) -> int:
    from .features import load_backbone
    from .gram import position_blindness, position_blindness_figure
    from .viz import save_figure

    check_int("--size", args.size, 16)
    check_int("--tiles", args.tiles, 1)
    out = _check_figure_path(args.out, [args.image])
    net = load_backbone(args.backbone, device=args.device)
    r = position_blindness(net, args.image, args.layer, args.content_layer, args.tiles, args.seed, args.size)
    fig = position_blindness_figure(net, None, result=r)
    print(f"Gram at {args.layer}: relative change {r['gram_rel_diff']:.4f}; "
          f"features at {args.content_layer}: relative change {r['content_rel_diff']:.4f}")
    save_figure(fig, out)
    print(f"wrote {out}")
    return 0


# ---- teachkit reconstruct ---------------------------------------------------------------------


def cmd_reconstruct(args) -> int:
    from .features import load_backbone
    from .gram import to_input
    from .progress import TqdmReporter
    from .reconstruct import (DEFAULT_LAYERS, DEFAULT_SIZE, DEFAULT_STEPS, content_reconstructions,
                              reconstruction_grid_figure, textures)
    from .viz import save_figure

    size = DEFAULT_SIZE if args.size is None else args.size
    steps = DEFAULT_STEPS if args.steps is None else args.steps
    check_int("--size", size, 16)
    check_int("--steps", steps, 1)
    layers = args.layers if args.layers is not None else list(DEFAULT_LAYERS)
    if not layers:
        raise UsageError("--layers is empty")
    out = _check_figure_path(args.out, [args.image])
    x = to_input(args.image, size)
    net = load_backbone(args.backbone, pooling=args.pooling, device=args.device)
    net.check_layers(layers)
    bar = TqdmReporter(desc=args.kind, keys=("total",))
    try:
        run = content_reconstructions if args.kind == "content" else textures
        results = run(net, x, layers, None, steps, args.seed, callback=bar)
    finally:
        bar.close()
    fig = reconstruction_grid_figure(x, results, n_columns=len(layers))
    for r in results:
        what = "pixel RMSE to the image" if r.kind == "content" else "fraction of J_style left"
        print(f"{r.layers[-1]}: {what} {r.distance:.4g} ({r.steps} steps, {r.seconds:.1f} s)")
    save_figure(fig, out)
    print(f"wrote {out}")
    return 0


# ---- entry point -------------------------------------------------------------------------------

#: The sub-commands, in the order ``teachkit --help`` lists them: one ``add_<name>_parser`` each.
COMMANDS = (
    add_layers_parser,
    add_transfer_parser,
    add_patches_parser,
    add_gram_parser,
    add_reconstruct_parser,
    add_prepare_parser,  # teachkit/prepare.py: its parser and command live beside what they run
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="teachkit", description="See what convolutional networks see, and how style transfer works."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .features import BackboneError
    from .images import ImageError

    parser = build_parser()
    args = parser.parse_args(_gram_shorthand(list(sys.argv[1:] if argv is None else argv)))
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("teachkit: interrupted", file=sys.stderr)
        return 130
    except (UsageError, ImageError, BackboneError, ValueError, FileNotFoundError, PermissionError) as exc:
        print(f"teachkit: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
