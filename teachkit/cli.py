"""The ``teachkit`` command: ``teachkit transfer | layers | patches | gram | reconstruct | ...``.

Each sub-command has ``add_<name>_parser`` and ``cmd_<name>``; :data:`COMMANDS` lists them.  A user's
mistake or a system error (a bad image, a full disk, ...) is one line on stderr naming the path, exit
code 2, no traceback; ``--lang`` (before or after the sub-command) chooses the language."""

from __future__ import annotations

import argparse
import contextlib
import errno
import sys

from .features import POOLINGS
from .fileio import check_int
from .messages import LANGS, InputError, TeachkitError, language, text, using_language
from .messages import help_text as words
from .prepare import add_prepare_parser
from .serve import add_app_parser

__all__ = ["main", "build_parser"]


class UsageError(InputError):
    """A problem with the command line, reported as one line with exit code 2: a message id with
    parameters (``UsageError("patches.shard_needs_out")``), worded in the process's language."""


def _csv(text: str) -> list[str]:
    """An argparse ``type``: a comma list of names (the one parser of lists: teachkit.options.parse_list)."""
    from .options import parse_list

    return list(parse_list(text, str) or ())


# ---- teachkit layers ---------------------------------------------------------------------------


def add_layers_parser(sub) -> None:
    p = sub.add_parser("layers", help=words("cli.help.layers"))
    p.add_argument("--backbone", default="vgg19", help=words("cli.help.backbone", default="vgg19"))
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
    from . import options
    from .transfer import PRESETS

    p = sub.add_parser("transfer", help=words("cli.transfer.help"), description=words("cli.transfer.description"))
    p.add_argument("content", nargs="?", default=None, help=words("cli.transfer.content"))
    p.add_argument("styles", nargs="*", default=[], help=words("cli.transfer.styles"))
    p.add_argument("-o", "--output", default="transfer.png", help=words("cli.transfer.output", default="transfer.png"))
    p.add_argument("--preset", choices=tuple(PRESETS), default="default",
                   help=words("cli.transfer.preset", default="default"))
    options.add_cli_arguments(p)  # every TransferConfig option, from its one declaration (teachkit/options.py)
    p.add_argument("--save-every", metavar="DIR", default=None, help=words("cli.transfer.save_every"))
    p.add_argument("--log", metavar="FILE.json", default=None, help=words("cli.transfer.json_log"))
    p.add_argument("--plot", metavar="FILE.png", default=None, help=words("cli.transfer.plot"))
    p.add_argument("--quiet", action="store_true", help=words("cli.transfer.quiet"))
    p.set_defaults(func=cmd_transfer)


def _transfer_config(args):
    """The TransferConfig of the command line: the preset, then every option given explicitly."""
    from .options import config_from_args

    return config_from_args(args, args.preset)


def _step_file(step: int) -> str:
    """The name of the intermediate image of ``step`` in the ``--save-every`` folder."""
    return f"step_{step:04d}.png"


def _check_save_every(folder: str, preview_every: int, total_steps: int, protected: list):
    """The ``--save-every`` folder, checked: a folder (made if missing) where an image can be
    written, with ``--preview-every`` > 0, and where no intermediate image (``step_0000.png`` up to
    the last step) would replace a file of ``protected`` (the inputs, -o, --plot, --log; None or a
    sample name is skipped) -- refused, naming the file it would have replaced."""
    from pathlib import Path

    from .fileio import same_path
    from .images import check_output_path
    from .messages import InputError

    save_dir = Path(folder).expanduser()
    if save_dir.exists() and not save_dir.is_dir():
        raise InputError("cli.save_every_file", folder=folder)
    if preview_every <= 0:
        raise InputError("cli.save_every_preview")
    check_output_path(save_dir / _step_file(0))
    for path in protected:
        if path is None or not isinstance(path, (str, Path)):
            continue
        q = Path(path).expanduser()
        stem = q.name[len("step_"):-len(".png")] if q.name.startswith("step_") and q.name.endswith(".png") else ""
        if stem.isdigit() and int(stem) <= total_steps and q.name == _step_file(int(stem)) \
                and same_path(q.parent, save_dir):
            raise InputError("cli.save_every_clash", folder=folder, name=q.name, path=str(path))
    return save_dir


def cmd_transfer(args) -> int:
    import warnings

    from .fileio import check_distinct_outputs
    from .images import check_output_path, save_image
    from .messages import Message
    from .samples import DEFAULT_CONTENT, DEFAULT_STYLE
    from .transfer import Engine, SlowDtypeWarning, schedule

    # 1. everything that can be checked is checked before the long work
    content = args.content if args.content is not None else DEFAULT_CONTENT
    styles = list(args.styles) or [DEFAULT_STYLE]
    inputs = [content, *styles]
    out = check_output_path(args.output, inputs=inputs)
    plot_path = check_output_path(args.plot, "figure", inputs=inputs) if args.plot else None
    log_path = check_output_path(args.log, "json", inputs=inputs) if args.log else None
    check_distinct_outputs({"-o": out, "--plot": plot_path, "--log": log_path})
    sched = schedule(_transfer_config(args), len(styles))  # ConfigError on a bad option, before any image is read
    # the engine's plan: images (ImageError), layers (naming the layer), precision, steps, weights
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SlowDtypeWarning)  # said once, below
        engine = Engine(content, styles, sched)
    if engine.plan.dtype_warning:
        print(text("cli.warning", detail=engine.plan.dtype_warning), file=sys.stderr)
    save_dir = None
    if args.save_every:
        save_dir = _check_save_every(args.save_every, sched.config.preview_every, engine.plan.steps,
                                     [out, plot_path, log_path, *inputs])

    # 2. the long work, with a progress bar; Ctrl-C returns the latest image
    reporter = None
    if not args.quiet:
        from .progress import TqdmReporter

        reporter = TqdmReporter(desc="transfer", keys=("total", "content", "style"), file=sys.stderr)

    def callback(p):
        nonlocal save_dir
        if reporter is not None:
            reporter(p)
        if save_dir is not None and p.image is not None:
            try:
                save_image(p.image, save_dir / _step_file(p.step))
            except OSError as exc:  # a full folder: said once; the run goes on without intermediates
                why = Message("cli.save_every_failed", {"reason": os_error_message(exc)})
                print(text("cli.warning", detail=why), file=sys.stderr)
                save_dir = None

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SlowDtypeWarning)  # said once, above
            result = engine.run(callback=callback)
    finally:
        if reporter is not None:
            reporter.close()

    # 3. write what there is
    save_image(result.image, out)
    w, h = result.image.size
    steps = len(result.history)
    if result.stopped:
        print(text("cli.transfer.interrupted", steps=steps, path=out, w=w, h=h))
    else:
        print(text("cli.transfer.wrote", path=out, w=w, h=h, steps=steps, secs=result.seconds,
                   j=result.costs.get("total", 0)))
    print(result.plan.weights_message().text())
    if log_path is not None:
        result.save_log(log_path)
        print(text("cli.transfer.wrote_log", path=log_path))
    if plot_path is not None and result.history:
        from .viz import plot_history, save_figure

        save_figure(plot_history(result.history, layers=True, weights=result.plan), plot_path)
        print(text("cli.transfer.wrote_plot", path=plot_path))
    return 130 if result.stopped else 0


# ---- teachkit patches --------------------------------------------------------------------------


def add_patches_parser(sub) -> None:
    from .patches import DEFAULT_IMAGE_SIZE, DEFAULT_LAYERS, DEFAULT_PER_IMAGE

    p = sub.add_parser("patches", help=words("patches.help"), description=words("patches.help.description"))
    psub = p.add_subparsers(dest="patches_command", required=True)

    s = psub.add_parser("scan", help=words("patches.help.scan"))
    s.add_argument("--data", default="sample", help=words("patches.help.data"))
    s.add_argument("--backbone", default="vgg19", help=words("cli.help.backbone", default="vgg19"))
    s.add_argument("--layers", type=_csv, default=None,
                   help=words("patches.help.layers", default=",".join(DEFAULT_LAYERS)))
    s.add_argument("--k", type=int, default=9, help=words("patches.help.k", default=9))
    s.add_argument("--image-size", type=int, default=None, help=words("patches.help.image_size", default=DEFAULT_IMAGE_SIZE))
    s.add_argument("--batch-size", type=int, default=16, help=words("patches.help.batch_size", default=16))
    s.add_argument("--positions-per-image", type=int, default=1, help=words("patches.help.positions", default=1))
    s.add_argument("--per-image", type=int, default=DEFAULT_PER_IMAGE, metavar="N",
                   help=words("patches.help.per_image", default=DEFAULT_PER_IMAGE))
    s.add_argument("--shard", default=None, help=words("patches.help.shard"))
    s.add_argument("--device", default=None, help=words("patches.help.device"))
    s.add_argument("--threads", type=int, default=None, help=words("patches.help.threads"))
    s.add_argument("--out", "-o", default=None, help=words("patches.help.out"))
    s.add_argument("--cache-dir", default=None, help=words("patches.help.cache_dir"))
    s.add_argument("--rescan", action="store_true", help=words("patches.help.rescan"))
    s.set_defaults(func=cmd_patches_scan)

    sh = psub.add_parser("show", help=words("patches.help.show"))
    sh.add_argument("atlas", help=words("patches.help.atlas"))
    sh.add_argument("--layer", required=True, help=words("patches.help.layer"))
    sh.add_argument("--unit", type=int, required=True, help=words("patches.help.unit"))
    sh.add_argument("--out", "-o", required=True, help=words("cli.help.figure_out"))
    sh.add_argument("--map", default=None, metavar="FILE", help=words("patches.help.map"))
    sh.add_argument("--data", default=None, help=words("patches.help.moved"))
    sh.set_defaults(func=cmd_patches_show)

    ov = psub.add_parser("overview", help=words("patches.help.overview"))
    ov.add_argument("atlas", help=words("patches.help.atlas"))
    ov.add_argument("--out", "-o", required=True, help=words("cli.help.figure_out"))
    ov.add_argument("--layers", type=_csv, default=None, help=words("patches.help.overview_layers"))
    ov.add_argument("--units", type=int, default=4, help=words("patches.help.units", default=4))
    ov.add_argument("--how", default="most_active", choices=("most_active", "most_varied", "index"),
                    help=words("patches.help.how", default="most_active"))
    ov.add_argument("--data", default=None, help=words("patches.help.moved"))
    ov.set_defaults(func=cmd_patches_overview)

    mg = psub.add_parser("merge", help=words("patches.help.merge"))
    mg.add_argument("atlases", nargs="+", metavar="ATLAS", help=words("patches.help.atlases"))
    mg.add_argument("--out", "-o", required=True, help=words("patches.help.merge_out"))
    mg.set_defaults(func=cmd_patches_merge)


def _check_figure_path(path: str, inputs=()):
    from .images import check_output_path

    return check_output_path(path, "figure", inputs=inputs)


def _wrote(fig, out) -> int:
    from .viz import save_figure

    save_figure(fig, out)
    print(text("cli.wrote", path=out))
    return 0


def _atlas_and_data(args):
    from .patches import Atlas

    atlas = Atlas.load(args.atlas)
    try:
        ds = atlas.open_dataset(args.data)
    except FileNotFoundError as exc:
        raise UsageError("patches.images_moved", problem=exc) from None
    return atlas, ds


def _scan_options(args) -> dict:
    from .patches import DEFAULT_IMAGE_SIZE

    return dict(k=args.k, image_size=args.image_size or DEFAULT_IMAGE_SIZE, batch_size=args.batch_size,
                positions_per_image=args.positions_per_image, per_image=check_int("--per-image", args.per_image, 0))


@contextlib.contextmanager
def ctrl_c_stops():
    """An Event that the first Ctrl-C sets (a long scan then stops and keeps what it made); a second one
    interrupts as usual."""
    import signal
    import threading

    stop, old = threading.Event(), None
    if threading.current_thread() is threading.main_thread():
        def on_ctrl_c(signum, frame):
            stop.set()
            signal.signal(signal.SIGINT, old)
        old = signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield stop
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)


def say_skipped(meta: dict) -> None:
    """The unreadable images of a scan, counted and named in one line."""
    if meta["n_skipped"]:
        print(text("patches.skipped", n=meta["n_skipped"],
                   names=", ".join(meta["skipped"][:10]) + (" ..." if meta["n_skipped"] > 10 else "")))


def cmd_patches_scan(args) -> int:
    """One process: the cache, or a scan (of one --shard).  Under torchrun: every process scans its
    share and rank 0 writes the one atlas (teachkit.distributed)."""
    import os
    import time

    import torch

    from . import distributed
    from .datasets import get_dataset
    from .features import load_backbone
    from .images import check_output_path
    from .patches import get_atlas, scan, store
    from .progress import TqdmReporter

    together = distributed.launched()
    shard = None
    if args.shard:
        try:
            part, parts = (int(v) for v in args.shard.split("/"))
        except ValueError:
            raise UsageError("patches.shard_option", shard=repr(args.shard)) from None
        if not args.out:
            raise UsageError("patches.shard_needs_out")
        if together:
            raise UsageError("patches.shard_torchrun")
        shard = (part, parts)
    if args.threads is not None:
        torch.set_num_threads(check_int("--threads", args.threads, 1))
    if args.out:
        check_output_path(args.out, "npz")
    options = _scan_options(args)
    data = get_dataset(args.data)  # a wrong folder fails now, before the network loads
    net = load_backbone(args.backbone, device=distributed.device_for_rank(args.device) if together else args.device)
    first = not together or os.environ.get("RANK", "0") == "0"  # only rank 0 draws a bar and prints
    bar = TqdmReporter(desc="scan", unit="img") if first else None
    t0 = time.perf_counter()
    with ctrl_c_stops() as stop:
        try:
            if together:
                with distributed.process_group(net.device):
                    atlas = distributed.scan(net, data, args.layers, callback=bar, stop=stop, **options)
                if atlas is None:  # not rank 0: its share went to rank 0
                    return 130 if stop.is_set() else 0
                if not args.out and atlas.complete:
                    store(atlas, args.cache_dir)
            elif shard is not None:
                atlas = scan(net, data, args.layers, shard=shard, callback=bar, stop=stop, **options)
            else:
                atlas = get_atlas(data, net, args.layers, callback=bar, cache_dir=args.cache_dir, stop=stop,
                                  rescan=args.rescan, **{**options, "image_size": args.image_size})
        finally:
            if bar is not None:
                bar.close()
    m = atlas.meta
    print(text("patches.scanned", backbone=m["backbone"], dataset=m["dataset_name"], n=m["n_images"],
               size=m["image_size"], k=m["k"], layers=", ".join(m["layers"]), secs=time.perf_counter() - t0,
               processes=m.get("processes", 1)))
    say_skipped(m)
    if args.out:
        print(text("patches.saved", path=atlas.save(args.out)))
    elif atlas.path is not None:
        print(text("patches.cached", path=atlas.path))
    if stop.is_set():
        print(text("patches.stopped" if args.out else "patches.stopped_unsaved"), file=sys.stderr)
        return 130
    return 0


def cmd_patches_show(args) -> int:
    from .fileio import check_distinct_outputs
    from .viz import activation_map_figure, save_figure, unit_figure

    _check_figure_path(args.out)
    if args.map:
        _check_figure_path(args.map)
        check_distinct_outputs({"--out": args.out, "--map": args.map})
    atlas, ds = _atlas_and_data(args)
    fig = unit_figure(atlas, ds, args.layer, args.unit, lang=language())
    print(f"{atlas.unit_label(args.layer, args.unit, None)}: {save_figure(fig, args.out)}")
    if args.map:
        fig = activation_map_figure(atlas, ds, args.layer, args.unit, lang=language())
        print(text("patches.map_written", path=save_figure(fig, args.map)))
    return 0


def cmd_patches_overview(args) -> int:
    from .viz import layer_overview_figure, save_figure

    _check_figure_path(args.out)
    check_int("--units", args.units, 1)
    atlas, ds = _atlas_and_data(args)
    fig = layer_overview_figure(atlas, ds, args.layers, args.units, how=args.how, lang=language())
    print(text("patches.overview_written", layers=", ".join(args.layers or atlas.layers),
               path=save_figure(fig, args.out)))
    return 0


def cmd_patches_merge(args) -> int:
    from .images import check_output_path
    from .patches import Atlas, merge

    if len(args.atlases) < 2:
        raise UsageError("patches.merge_two")
    out = check_output_path(args.out, "npz", inputs=args.atlases)
    atlas = Atlas.load(args.atlases[0])
    for path in args.atlases[1:]:
        try:
            atlas = merge(atlas, Atlas.load(path))
        except ValueError as exc:
            raise UsageError("patches.merge_failed", path=path, problem=exc) from None
    m = atlas.meta
    print(text("patches.merged", backbone=m["backbone"], dataset=m["dataset_name"], start=m["start"], end=m["end"],
               total=m["dataset_size"], k=m["k"], layers=", ".join(m["layers"])))
    print(text("patches.saved", path=atlas.save(out)))
    return 0


# ---- teachkit gram ----------------------------------------------------------------------------

_GRAM_COMMANDS = ("show", "pair", "shuffle")


def _gram_shorthand(argv: list[str]) -> list[str]:
    """Let ``teachkit gram IMAGE ...`` mean ``teachkit gram show IMAGE ...`` (global options may come first)."""
    i = 0
    while i < len(argv) and argv[i].startswith("--lang"):
        i += 1 if "=" in argv[i] else 2
    if len(argv) > i + 1 and argv[i] == "gram" and argv[i + 1] not in (*_GRAM_COMMANDS, "-h", "--help"):
        return [*argv[:i + 1], "show", *argv[i + 1:]]
    return argv


def _gram_common(p, layer: str, size: int = 256) -> None:
    p.add_argument("--layer", default=layer, help=words("cli.help.gram_layer", default=layer))
    p.add_argument("--size", type=int, default=size, help=words("cli.help.gram_size", default=size))
    p.add_argument("--backbone", default="vgg19", help=words("cli.help.backbone", default="vgg19"))
    p.add_argument("--device", default=None, help=words("cli.help.device"))
    p.add_argument("--out", "-o", required=True, help=words("cli.help.figure_out"))


def add_gram_parser(sub) -> None:
    p = sub.add_parser("gram", help=words("cli.help.gram"), description=words("cli.help.gram_description"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    gsub = p.add_subparsers(dest="gram_command", required=True, metavar="{show,pair,shuffle}")

    s = gsub.add_parser("show", help=words("cli.help.gram_show"))
    s.add_argument("images", nargs="+", metavar="IMAGE", help=words("cli.help.gram_images"))
    _gram_common(s, "relu2_1")
    s.add_argument("--channels", type=int, default=32, help=words("cli.help.gram_channels", default=32))
    s.add_argument("--full", action="store_true", help=words("cli.help.gram_full"))
    s.add_argument("--normalization", default="lecture", choices=("lecture", "gatys", "none"),
                   help=words("cli.help.gram_normalization"))
    s.set_defaults(func=cmd_gram_show)

    pr = gsub.add_parser("pair", help=words("cli.help.gram_pair"))
    pr.add_argument("image", metavar="IMAGE", help=words("cli.help.image"))
    _gram_common(pr, "relu3_1")
    pr.add_argument("--channels", type=int, nargs=2, metavar=("K", "K2"), default=None,
                    help=words("cli.help.gram_pair_channels"))
    which = pr.add_mutually_exclusive_group()
    which.add_argument("--most", dest="which", action="store_const", const="most", help=words("cli.help.gram_most"))
    which.add_argument("--least", dest="which", action="store_const", const="least",
                       help=words("cli.help.gram_least"))
    pr.set_defaults(func=cmd_gram_pair, which="most")

    sh = gsub.add_parser("shuffle", help=words("cli.help.gram_shuffle"))
    sh.add_argument("image", metavar="IMAGE", help=words("cli.help.image"))
    _gram_common(sh, "relu2_1")
    sh.add_argument("--content-layer", default="relu4_2", help=words("cli.help.gram_content_layer", default="relu4_2"))
    sh.add_argument("--tiles", type=int, default=2, help=words("cli.help.gram_tiles", default=2))
    sh.add_argument("--seed", type=int, default=0, help=words("cli.help.gram_seed", default=0))
    sh.set_defaults(func=cmd_gram_shuffle)


def add_reconstruct_parser(sub) -> None:
    from .reconstruct import DEFAULT_LAYERS, DEFAULT_SIZE, DEFAULT_STEPS

    r = sub.add_parser("reconstruct", help=words("cli.help.reconstruct"),
                       description=words("cli.help.reconstruct_description"))
    r.add_argument("kind", choices=("content", "style"), help=words("cli.help.reconstruct_kind"))
    r.add_argument("image", metavar="IMAGE", help=words("cli.help.image"))
    r.add_argument("--layers", type=_csv, default=None,
                   help=words("cli.help.reconstruct_layers", default=",".join(DEFAULT_LAYERS)))
    r.add_argument("--size", type=int, default=None, help=words("cli.help.reconstruct_size", default=DEFAULT_SIZE))
    r.add_argument("--steps", type=int, default=None, help=words("cli.help.reconstruct_steps", default=DEFAULT_STEPS))
    r.add_argument("--seed", type=int, default=0, help=words("cli.help.reconstruct_seed", default=0))
    r.add_argument("--backbone", default="vgg19", help=words("cli.help.backbone", default="vgg19"))
    r.add_argument("--pooling", default="max", choices=POOLINGS, help=words("cli.help.pooling", default="max"))
    r.add_argument("--device", default=None, help=words("cli.help.device"))
    r.add_argument("--out", "-o", required=True, help=words("cli.help.figure_out"))
    r.set_defaults(func=cmd_reconstruct)


def cmd_gram_show(args) -> int:
    from .features import load_backbone
    from .gram import gram_comparison, gram_comparison_figure, gram_figure, gram_summary
    from .samples import resolve_image

    if len(args.images) > 2:
        raise UsageError("cli.gram_images", n=len(args.images))
    check_int("--channels", args.channels, 1)
    check_int("--size", args.size, 16)
    out = _check_figure_path(args.out, args.images)
    imgs = [resolve_image(i, args.size) for i in args.images]
    net = load_backbone(args.backbone, device=args.device)
    net.check_layers([args.layer])
    if len(imgs) == 1:
        s = gram_summary(net, imgs[0], args.layer, args.channels, args.full)
        fig = gram_figure(net, imgs[0], args.layer, args.channels, args.full, summary=s, lang=language())
        n_C, n_H, n_W = s["shape"]
        print(text("cli.gram.one", layer=args.layer, n_c=n_C, n_h=n_H, n_w=n_W))
    else:
        c = gram_comparison(net, imgs[0], imgs[1], args.layer, args.channels, args.normalization, args.full)
        fig = gram_comparison_figure(net, imgs[0], imgs[1], args.layer, comparison=c, lang=language())
        print(text("cli.gram.two", layer=args.layer, j=c["j_style"], normalization=args.normalization))
    return _wrote(fig, out)


def cmd_gram_pair(args) -> int:
    from .features import load_backbone
    from .gram import layer_activation, pair_explainer, pair_figure, pick_pair, to_input

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
    fig = pair_figure(net, x, args.layer, explained=e, lang=language())
    print(text("cli.gram.pair", layer=args.layer, k=k, k2=k2, sum=e["product_sum"], gram=e["gram"],
               corr=e["correlation"]))
    return _wrote(fig, out)


def cmd_gram_shuffle(args) -> int:
    from .features import load_backbone
    from .gram import position_blindness, position_blindness_figure

    check_int("--size", args.size, 16)
    check_int("--tiles", args.tiles, 1)
    out = _check_figure_path(args.out, [args.image])
    net = load_backbone(args.backbone, device=args.device)
    r = position_blindness(net, args.image, args.layer, args.content_layer, args.tiles, args.seed, args.size)
    fig = position_blindness_figure(net, None, result=r, lang=language())
    print(text("cli.gram.shuffle", layer=args.layer, gram=r["gram_rel_diff"], content_layer=args.content_layer,
               features=r["content_rel_diff"]))
    return _wrote(fig, out)


# ---- teachkit reconstruct ---------------------------------------------------------------------


def cmd_reconstruct(args) -> int:
    from .features import load_backbone
    from .gram import to_input
    from .progress import TqdmReporter
    from .reconstruct import (DEFAULT_LAYERS, DEFAULT_SIZE, DEFAULT_STEPS, content_reconstructions,
                              reconstruction_grid_figure, textures)

    size = DEFAULT_SIZE if args.size is None else args.size
    steps = DEFAULT_STEPS if args.steps is None else args.steps
    check_int("--size", size, 16)
    check_int("--steps", steps, 1)
    layers = args.layers if args.layers is not None else list(DEFAULT_LAYERS)
    if not layers:
        raise UsageError("cli.layers_empty")
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
    fig = reconstruction_grid_figure(x, results, n_columns=len(layers), lang=language())
    for r in results:
        print(text("cli.reconstruct.content" if r.kind == "content" else "cli.reconstruct.style",
                   layer=r.layers[-1], d=r.distance, steps=r.steps, secs=r.seconds))
    return _wrote(fig, out)


# ---- teachkit visualize ------------------------------------------------------------------------


def add_visualize_parser(sub) -> None:
    from .visualize import DEFAULT_SIZE, DEFAULT_STEPS

    v = sub.add_parser("visualize", help=words("visualize.help"), description=words("visualize.description"))
    v.add_argument("layer", metavar="LAYER", help=words("visualize.help.layer"))
    v.add_argument("unit", metavar="UNIT", type=int, help=words("visualize.help.unit"))
    v.add_argument("-o", "--output", required=True, metavar="FILE", help=words("visualize.help.output"))
    v.add_argument("--size", type=int, default=DEFAULT_SIZE, help=words("visualize.help.size", default=DEFAULT_SIZE))
    v.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                   help=words("visualize.help.steps", default=DEFAULT_STEPS))
    v.add_argument("--seed", type=int, default=0, help=words("visualize.help.seed", default=0))
    v.set_defaults(func=cmd_visualize)


def cmd_visualize(args) -> int:
    from .features import load_backbone
    from .images import check_output_path, save_image
    from .patches import get_atlas
    from .progress import TqdmReporter
    from .visualize import check_unit, visualize

    net = load_backbone("vgg19", device="cpu")
    unit = check_unit(net, args.layer, args.unit)  # a bad layer or unit: one line, before anything is written
    size, steps = check_int("--size", args.size, 16), check_int("--steps", args.steps, 1)
    out = check_output_path(args.output)
    bar = TqdmReporter(desc="visualize", keys=("activation",))
    try:
        r = visualize(net, args.layer, unit, size, steps, args.seed, callback=bar)
    finally:
        bar.close()
    save_image(r.image, out)
    line = text("visualize.done", layer=args.layer, unit=unit, value=r.activation, path=out, steps=r.steps,
                secs=r.seconds)
    atlas = get_atlas("sample", backbone=net)  # shipped with teachkit for its layers
    if args.layer in atlas.layers and (top := atlas.top(args.layer, unit)) and top[0].value > 0:
        line += "; " + text("visualize.ratio", ratio=r.activation / top[0].value, top=top[0].value)
    print(line)
    return 0


# ---- entry point -------------------------------------------------------------------------------

#: The sub-commands, in the order ``teachkit --help`` lists them: one ``add_<name>_parser`` each.
COMMANDS = (
    add_layers_parser,
    add_transfer_parser,
    add_patches_parser,
    add_gram_parser,
    add_reconstruct_parser,
    add_visualize_parser,
    add_prepare_parser,  # teachkit/prepare.py: its parser and command live beside what they run
    add_app_parser,  # teachkit/serve.py: `teachkit app` serves the classroom app
    __import__("teachkit.handout", fromlist=["_"]).add_handout_parser,  # teachkit/handout.py: printable handouts
    __import__("teachkit.notebooks", fromlist=["_"]).add_notebooks_parser,  # teachkit/notebooks: the lessons' notebooks
    __import__("teachkit.exercises.grade", fromlist=["_"]).add_exercises_parser,  # `teachkit exercises check`
)


def _global_options(p: argparse.ArgumentParser, top: bool) -> None:
    """The options that work before and after any sub-command (given after, they leave the top's value
    alone unless given: SUPPRESS); a command that declares its own --lang (same dest) keeps it."""
    from . import __version__

    if "--version" not in p._option_string_actions:
        p.add_argument("--version", action="version", version=f"teachkit {__version__}")
    if "--lang" not in p._option_string_actions:
        p.add_argument("--lang", choices=sorted(LANGS), default=None if top else argparse.SUPPRESS,
                       help=words("cli.lang_help"))


def _subparsers(p: argparse.ArgumentParser):
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                yield child
                yield from _subparsers(child)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="teachkit", description=text("cli.description"))
    _global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    for child in _subparsers(parser):
        _global_options(child, top=False)
    return parser


#: errno -> the reason in words (a name missing from this platform's errno is skipped)
_OS_REASONS = {
    getattr(errno, name): msg_id for name, msg_id in (
        ("ENOSPC", "os.no_space"), ("EDQUOT", "os.quota"), ("EACCES", "os.permission"),
        ("EPERM", "os.permission"), ("EROFS", "os.read_only"), ("ENOTDIR", "os.not_dir"),
        ("EISDIR", "os.is_dir"), ("EEXIST", "os.exists"), ("ENOENT", "os.not_found"),
        ("ENAMETOOLONG", "os.too_long"),
    ) if hasattr(errno, name)
}


def os_error_message(exc: OSError):
    """An OSError as one message naming its path and the reason in words (``cli.os_error``); a path
    inside ``$TEACHKIT_CACHE`` says so, since that setting is then what to fix."""
    import os

    from .messages import Message

    reason_id = _OS_REASONS.get(exc.errno)
    reason = Message(reason_id) if reason_id else Message("os.other", {"detail": exc.strerror or str(exc)})
    if exc.filename is None:
        return Message("cli.os_error_nopath", {"reason": reason})
    path = os.fsdecode(exc.filename)
    cache = os.environ.get("TEACHKIT_CACHE", "").strip()
    if cache and (path == cache or path.startswith(cache.rstrip("/\\") + os.sep)):
        return Message("cli.os_error_cache", {"path": path, "reason": reason, "cache": cache})
    return Message("cli.os_error", {"path": path, "reason": reason})


def _lang_option(argv: list[str]) -> str | None:
    """The last ``--lang zh`` / ``--lang=zh`` before any ``--``, read before the parser is built (the
    help is worded when the parser is made)."""
    found = None
    for i, token in enumerate(argv):
        if token == "--":
            break
        if token == "--lang":
            found = argv[i + 1] if i + 1 < len(argv) else None
        elif token.startswith("--lang="):
            found = token[len("--lang="):]
    return found


def main(argv: list[str] | None = None) -> int:
    """Run one command.  Messages, errors and the option help speak ``--lang``, else the locale
    (LC_ALL, LC_MESSAGES, LANG, LANGUAGE: ``zh*`` is Chinese); argparse's own headings ("usage:",
    "options:") stay English."""
    argv = _gram_shorthand(list(sys.argv[1:] if argv is None else argv))
    with using_language(_lang_option(argv)):  # an unknown value: the locale's (argparse refuses it below)
        args = build_parser().parse_args(argv)
    with using_language(args.lang):
        return _run(args)


def _run(args) -> int:
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(text("cli.interrupted"), file=sys.stderr)
        return 130
    except (UsageError, TeachkitError, ValueError) as exc:
        # a TeachkitError (ImageError, BackboneError, ConfigError, ...) is worded in this language;
        # any other is shown as it is (its words are English) inside this language's frame
        print(text("cli.error", detail=exc), file=sys.stderr)
        return 2
    except OSError as exc:  # disk full, no permission, TEACHKIT_CACHE naming a file, ...: one line naming the path
        print(text("cli.error", detail=os_error_message(exc)), file=sys.stderr)
        return 2
    except (RuntimeError, MemoryError) as exc:  # out of memory (CUDA, MPS, CPU): one line saying what to lower
        from .memory import out_of_memory

        if (oom := out_of_memory(exc)) is None:
            raise
        print(oom.text(), file=sys.stderr)
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
