"""Before class: build everything the lessons show by default into the cache (``teachkit prepare``).

Lesson 1's atlas (of the sample photos, or of the class's own: ``--photos``) and what its default units
want to see, a gallery of finished transfers with their frames (lessons 2 and 6), lesson 4's reconstructions
and lesson 5's textures, each a folder under ``<cache>/prepared/<backbone>/`` with a ``meta.json`` written last
(without it, unfinished)."""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .fileio import atomic_write
from .messages import InputError, Message, text
from .progress import Progress, ProgressCallback, report

__all__ = ["CONTENT_LAYERS", "GALLERY", "KINDS", "Prepared", "Recipe", "FAST", "FULL", "frame_steps", "load",
           "prepare", "prepare_atlas", "prepare_content", "prepare_texture", "prepare_transfer", "prepare_visualize",
           "prepared_root", "prepare_photos", "prepared_photos", "MAX_PHOTOS", "add_prepare_parser", "cmd_prepare"]

#: the finished transfers of the gallery (content sample, style sample): lessons 2 and 6
GALLERY: tuple[tuple[str, str], ...] = (
    ("chelsea", "stained_glass"),
    ("astronaut", "swirls"),
    ("rocket", "waves"),
    ("coffee", "rings"),
)
#: lesson 4: the layers a photo is rebuilt from (shallow -> deep)
#: (named after the ReLU, as the engine reads them)
CONTENT_LAYERS: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_2", "relu4_2", "relu5_2")
KINDS = ("atlas", "visualize", "gallery", "content", "texture")
#: ``--photos``: a folder of more photos than this is refused (``--max-photos``)
MAX_PHOTOS = 1000


@dataclass(frozen=True)
class Recipe:
    """Sizes and step counts of the prepared results."""

    transfer_size: int = 256
    transfer_steps: int | None = None  #: None: the 'quick' preset's own schedule
    content_size: int = 128
    content_steps: int = 100
    texture_size: int = 96
    texture_steps: int = 40
    atlas_size: int | None = None  #: None: teachkit.patches' default scan size
    visualize_size: int = 128
    visualize_steps: int = 128


#: what ``teachkit prepare`` builds (README: its time, with the machine)
FULL = Recipe()
#: tiny results for tests and very slow machines (``--fast``)
FAST = Recipe(transfer_size=32, transfer_steps=3, content_size=32, content_steps=2, texture_size=32,
              texture_steps=2, atlas_size=48, visualize_size=32, visualize_steps=2)


def prepared_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``<cache>/prepared``: ``cache_dir``, else ``$TEACHKIT_CACHE``, else the OS's cache folder
    (:func:`teachkit.paths.cache_dir`)."""
    if cache_dir is None:
        from .paths import cache_dir as default_cache

        cache_dir = default_cache()
    return Path(cache_dir) / "prepared"


def _item_dir(root: Path, backbone: str, kind: str, *names: str) -> Path:
    return root / backbone / "-".join((kind, *names))


def frame_steps(total: int, n: int = 10) -> list[int]:
    """About ``n`` steps from 1 to ``total``, closer together at the start (where G changes most)."""
    if total <= 0:
        return []
    steps = {max(1, min(total, round(math.exp(math.log(total) * i / max(1, n - 1))))) for i in range(n)}
    return sorted(steps | {total})


@dataclass
class Prepared:
    """One prepared item read back: its images (PIL, in order), their labels, and its metadata."""

    kind: str
    images: list
    labels: list
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self):
        return self.images[-1]


def _save_png(img, path: Path) -> str:
    with atomic_write(path) as f:
        img.save(f, format="PNG")
    return path.name


def _finish(folder: Path, meta: dict) -> None:
    with atomic_write(folder / "meta.json", "w") as f:
        json.dump(meta, f, indent=1, allow_nan=False)


def load(kind: str, *names: str, backbone: str = "vgg19", cache_dir=None) -> Prepared | None:
    """A finished prepared item (``load("gallery", "chelsea", "stained_glass")``), or None."""
    from PIL import Image

    folder = _item_dir(prepared_root(cache_dir), backbone, kind, *names)
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        images = []
        for item in meta["images"]:
            with Image.open(folder / item["file"]) as im:
                images.append(im.convert("RGB"))
        return Prepared(kind, images, [item["label"] for item in meta["images"]], meta)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # not prepared (or unfinished, or damaged): the page offers to run it live


def _net(net):
    """:func:`teachkit.transfer.backbone_for`, imported when first needed (``teachkit --help`` stays light)."""
    from .transfer import backbone_for as load

    return load(net)


# ---- the items ---------------------------------------------------------------------------------


def prepare_transfer(net, content: str, style: str, recipe: Recipe = FULL, cache_dir=None,
                     callback: ProgressCallback | None = None, force: bool = False) -> Prepared:
    """A finished transfer of two samples with the classroom preset, with frames along the way (gallery)."""
    from .samples import sample_content, sample_style
    from .transfer import TransferConfig, initial_image, transfer

    net = _net(net)
    folder = _item_dir(prepared_root(cache_dir), net.name, "gallery", content, style)
    if not force and (done := load("gallery", content, style, backbone=net.name, cache_dir=cache_dir)):
        return done
    folder.mkdir(parents=True, exist_ok=True)
    config = TransferConfig.preset("quick", size=recipe.transfer_size, preview_every=1, seed=0,
                                   **({} if recipe.transfer_steps is None else
                                      {"steps": recipe.transfer_steps, "scales": None, "scale_steps": None}))
    frames: list[tuple[int, Any]] = []

    def progress(p: Progress):  # the frames: frame_steps of the engine's own total
        if p.image is not None and p.step in frame_steps(p.total):
            frames.append((p.step, p.image))
        return report(callback, p)

    c_img = sample_content(content)
    s_img = sample_style(style, recipe.transfer_size)
    result = transfer(c_img, [s_img], config, callback=progress, backbone=net)
    if result.stopped:
        raise KeyboardInterrupt  # a cancelled preparation keeps nothing
    start = initial_image(c_img, config)  # G0 at the engine's first scale
    images = [{"file": _save_png(start, folder / "frame_0000.png"), "label": 0}]
    for step, img in frames:
        images.append({"file": _save_png(img, folder / f"frame_{step:04d}.png"), "label": step})
    if not frames or frames[-1][0] != len(result.history):
        images.append({"file": _save_png(result.image, folder / "result.png"), "label": len(result.history)})
    _finish(folder, {"kind": "gallery", "content": content, "style": style, "images": images,
                     "size": recipe.transfer_size, "steps": len(result.history), "seconds": result.seconds,
                     "preset": "quick", "init": result.plan.start, "scales": [sc.size for sc in result.plan.scales],
                     "scale_steps": [sc.steps for sc in result.plan.scales], "weights": result.plan.weights,
                     "optimizer": result.config.optimizer, "weights_id": net.weights_id})
    return load("gallery", content, style, backbone=net.name, cache_dir=cache_dir)


def _save_results(folder: Path, kind: str, name: str, results, recipe_size: int, steps: int, net,
                  extra: dict) -> None:
    images = []
    for r in results:
        label = r.layers[0] if len(r.layers) == 1 else f"{r.layers[0]}..{r.layers[-1]}"
        images.append({"file": _save_png(r.image, folder / f"{kind}_{r.layers[-1]}.png"), "label": label,
                       "distance": float(r.distance), "steps": int(r.steps)})
    _finish(folder, {"kind": kind, "name": name, "images": images, "size": recipe_size, "steps": steps,
                     "seconds": float(sum(r.seconds for r in results)), "weights_id": net.weights_id, **extra})


def _prepare_layers(kind: str, net, name: str, image, layers: Sequence[str], make, size: int, steps: int,
                    cache_dir, callback, force: bool) -> Prepared:
    """Lessons 4 and 5: one reconstruction per layer (``make``: :func:`teachkit.reconstruct.content_reconstructions`
    or :func:`~teachkit.reconstruct.textures`), saved as one prepared item."""
    net = _net(net)
    if not force and (done := load(kind, name, backbone=net.name, cache_dir=cache_dir)):
        return done
    folder = _item_dir(prepared_root(cache_dir), net.name, kind, name)
    folder.mkdir(parents=True, exist_ok=True)
    results = make(net, image, layers, size=size, steps=steps, callback=callback, image_every=steps)
    if len(results) < len(layers) or results[-1].stopped:
        raise KeyboardInterrupt  # a cancelled preparation keeps nothing
    _save_results(folder, kind, name, results, size, steps, net, {})
    return load(kind, name, backbone=net.name, cache_dir=cache_dir)


def prepare_content(net, content: str, recipe: Recipe = FULL, cache_dir=None,
                    callback: ProgressCallback | None = None, force: bool = False) -> Prepared:
    """Lesson 4: a photo rebuilt from white noise out of each layer of :data:`CONTENT_LAYERS`."""
    from .reconstruct import content_reconstructions
    from .samples import sample_content

    return _prepare_layers("content", net, content, sample_content(content), CONTENT_LAYERS, content_reconstructions,
                           recipe.content_size, recipe.content_steps, cache_dir, callback, force)


def prepare_texture(net, style: str, recipe: Recipe = FULL, cache_dir=None,
                    callback: ProgressCallback | None = None, force: bool = False) -> Prepared:
    """Lesson 5: textures from white noise matching the Gram matrices up to each style layer."""
    from .features import DEFAULT_STYLE_LAYERS
    from .reconstruct import textures
    from .samples import sample_style

    return _prepare_layers("texture", net, style, sample_style(style, recipe.texture_size), DEFAULT_STYLE_LAYERS,
                           textures, recipe.texture_size, recipe.texture_steps, cache_dir, callback, force)


def prepare_atlas(net, dataset="sample", recipe: Recipe = FULL, cache_dir=None,
                  callback: ProgressCallback | None = None, **options):
    """Lesson 1: the atlas of ``dataset`` for the style layers, k = 9 (from the cache, or scanned)."""
    from .features import DEFAULT_STYLE_LAYERS
    from .patches import get_atlas

    atlas_cache = None if cache_dir is None else Path(cache_dir) / "atlases"
    return get_atlas(dataset, backbone=_net(net), layers=DEFAULT_STYLE_LAYERS, k=9,
                     image_size=recipe.atlas_size, callback=callback, cache_dir=atlas_cache, **options)


def photo_folder(folder, max_photos: int = MAX_PHOTOS):
    """The folder of the class's photos as a dataset, refused (one message) if it holds more than ``max_photos``."""
    from .datasets import DatasetError, FolderDataset

    try:
        return FolderDataset(folder, max_files=max_photos)
    except DatasetError as err:
        if err.msg_id == "dataset.too_many_files":
            raise DatasetError("prepare.too_many_photos", folder=str(folder), limit=max_photos) from None
        raise


def prepare_photos(net, folder, recipe: Recipe = FULL, cache_dir=None, callback: ProgressCallback | None = None,
                   stop=None, max_photos: int = MAX_PHOTOS):
    """Lesson 1's atlas of a folder of the class's own photos (a path, at most ``max_photos``, or
    :func:`photo_folder`'s dataset).  A stopped scan is kept in the cache and the next call goes on from
    there; once complete, lesson 1 shows it by default (:func:`prepared_photos`)."""
    from .datasets import DatasetError, FolderDataset

    ds = folder if isinstance(folder, FolderDataset) else photo_folder(folder, max_photos)
    net = _net(net)
    atlas = prepare_atlas(net, ds, recipe, cache_dir, callback, stop=stop, resume=True)
    if atlas.complete and not atlas.n_images:
        raise DatasetError("prepare.no_readable_photos", folder=ds.label, n=len(ds))
    if atlas.complete:
        item = _item_dir(prepared_root(cache_dir), net.name, "atlas", "photos")
        item.mkdir(parents=True, exist_ok=True)
        _finish(item, {"kind": "atlas", "folder": str(ds.root), "images": [], "n_images": atlas.n_images,
                       "n_skipped": atlas.meta["n_skipped"], "fingerprint": ds.fingerprint})
    return atlas


def prepared_photos(backbone: str = "vgg19", cache_dir=None) -> str | None:
    """The folder ``teachkit prepare --photos`` made lesson 1's atlas of, if it is still there."""
    done = load("atlas", "photos", backbone=backbone, cache_dir=cache_dir)
    folder = done.meta.get("folder") if done else None
    return folder if isinstance(folder, str) and Path(folder).is_dir() else None


def prepare_visualize(net, layer: str, unit: int, recipe: Recipe = FULL, cache_dir=None,
                      callback: ProgressCallback | None = None, force: bool = False) -> Prepared:
    """Lesson 1: what one unit wants to see (:func:`teachkit.visualize.visualize`)."""
    from .visualize import visualize

    net = _net(net)
    if not force and (done := load("visualize", layer, str(unit), backbone=net.name, cache_dir=cache_dir)):
        return done
    folder = _item_dir(prepared_root(cache_dir), net.name, "visualize", layer, str(unit))
    folder.mkdir(parents=True, exist_ok=True)
    r = visualize(net, layer, unit, recipe.visualize_size, recipe.visualize_steps, callback=callback,
                  image_every=recipe.visualize_steps)
    if r.stopped:
        raise KeyboardInterrupt  # a cancelled preparation keeps nothing
    image = {"file": _save_png(r.image, folder / "unit.png"), "label": f"{layer} #{unit}", "activation": r.activation}
    _finish(folder, {"kind": "visualize", "images": [image], "size": recipe.visualize_size, "steps": r.steps,
                     "seconds": r.seconds, "weights_id": net.weights_id})
    return load("visualize", layer, str(unit), backbone=net.name, cache_dir=cache_dir)


#: seconds of one core each part of FULL takes on a 2-core AVX2 laptop (README: ``teachkit prepare``), the first
#: estimate: a gallery pair, lesson 4's rebuilt photo, one texture, each default unit (by its layer); the sample
#: atlas is shipped (a scan of another dataset is not estimated)
PART_SECONDS = {"atlas": 0.0, "gallery": 34.0, "content": 57.0, "texture": 22.0,
                "relu1_1": 2.0, "relu2_1": 10.0, "relu3_1": 19.0, "relu4_1": 38.0, "relu5_1": 60.0}


class _Pace:
    """Says each part as it starts, k of n, with the minutes left: PART_SECONDS at first, then at the pace
    this machine has shown (a part made before takes no time and does not count)."""

    def __init__(self, say, parts: list[str], clock=time.perf_counter):
        self.say, self.parts, self.clock, self.k, self.taken, self.nominal = say, parts, clock, 0, 0.0, 0.0
        self.t = clock()

    def __call__(self, message: Message) -> None:
        now, last = self.clock(), PART_SECONDS.get(self.parts[self.k - 1], 0.0) if self.k else 0.0
        if now - self.t >= 1.0 and last:
            self.taken, self.nominal = self.taken + now - self.t, self.nominal + last
        self.t, self.k = now, self.k + 1
        pace = self.taken / self.nominal if self.nominal else 1.0
        left = pace * sum(PART_SECONDS.get(p, 0.0) for p in self.parts[self.k - 1:])
        self.say(Message("progress.prepare_part" if self.nominal else "progress.prepare_first", k=self.k,
                         n=len(self.parts), what=message, minutes=max(1, round(left / 60))))


def prepare(net=None, kinds: Sequence[str] = KINDS, recipe: Recipe = FULL, cache_dir=None,
            callback: ProgressCallback | None = None, force: bool = False, log=None,
            dataset="sample") -> dict[str, float]:
    """Everything of ``kinds`` for the default lessons (lesson 1's of ``dataset``); returns the seconds each kind took.
    ``log`` is called with a :class:`~teachkit.messages.Message` as each part starts."""
    from .features import DEFAULT_STYLE_LAYERS
    from .samples import DEFAULT_CONTENT, list_samples

    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise InputError("prepare.unknown_kind", kind=repr(unknown[0]), kinds=", ".join(KINDS))
    net = _net(net)
    parts = {"gallery": ["gallery"] * len(GALLERY), "texture": ["texture"] * len(list_samples()["style"]),
             "visualize": list(DEFAULT_STYLE_LAYERS)}
    say = _Pace(log or (lambda text: None), [p for k in KINDS if k in kinds for p in parts.get(k, [k])])
    seconds: dict[str, float] = {}
    for kind in KINDS:
        if kind not in kinds:
            continue
        t0 = time.perf_counter()
        if kind == "atlas":
            say(Message("progress.prepare_atlas", dataset=dataset))
            prepare_atlas(net, dataset, recipe, cache_dir, callback)
        elif kind == "visualize":
            from .visualize import default_units

            for layer, unit in default_units(prepare_atlas(net, dataset, recipe, cache_dir)):
                say(Message("progress.visualize", layer=layer, unit=unit))
                prepare_visualize(net, layer, unit, recipe, cache_dir, callback, force)
        elif kind == "gallery":
            for content, style in GALLERY:
                say(Message("progress.prepare_gallery", content=content, style=style))
                prepare_transfer(net, content, style, recipe, cache_dir, callback, force)
        elif kind == "content":
            say(Message("progress.prepare_content", content=DEFAULT_CONTENT, layers=", ".join(CONTENT_LAYERS)))
            prepare_content(net, DEFAULT_CONTENT, recipe, cache_dir, callback, force)
        else:
            for style in list_samples()["style"]:
                say(Message("progress.prepare_texture", style=style))
                prepare_texture(net, style, recipe, cache_dir, callback, force)
        seconds[kind] = time.perf_counter() - t0
    return seconds


# ---- the command line: ``teachkit prepare`` -------------------------------------------------------


def add_prepare_parser(sub) -> None:
    from .messages import help_text as words

    p = sub.add_parser("prepare", help=words("prepare.help"), description=words("prepare.description"))
    p.add_argument("--only", nargs="+", choices=KINDS, metavar="KIND", help=words("prepare.help.only",
                                                                                 kinds=", ".join(KINDS)))
    p.add_argument("--dataset", default="sample", help=words("prepare.help.dataset"))
    p.add_argument("--photos", metavar="DIR", help=words("prepare.help.photos"))
    p.add_argument("--max-photos", type=int, default=MAX_PHOTOS, metavar="N",
                   help=words("prepare.help.max_photos", default=MAX_PHOTOS))
    p.add_argument("--cache", metavar="DIR", help=words("prepare.help.cache"))
    p.add_argument("--threads", type=int, default=None, metavar="N", help=words("prepare.help.threads"))
    p.add_argument("--fast", action="store_true", help=words("prepare.help.fast"))
    p.add_argument("--force", action="store_true", help=words("prepare.help.force"))
    p.add_argument("--backbone", default="vgg19", help=words("cli.help.backbone", default="vgg19"))
    p.set_defaults(func=cmd_prepare)


def cmd_prepare(args: argparse.Namespace) -> int:
    import sys

    from tqdm.auto import tqdm

    from .fileio import check_int
    from .progress import TqdmReporter

    recipe = FAST if args.fast else FULL
    if args.threads is not None:  # an option, not OMP_NUM_THREADS=1: the same on every OS's shell
        import torch

        torch.set_num_threads(check_int("--threads", args.threads, 1))
    kinds, seconds = list(args.only or KINDS), {}
    photos = args.photos and "atlas" in kinds and photo_folder(args.photos, check_int("--max-photos", args.max_photos, 1))
    net = _net(args.backbone)
    if photos:  # the class's photos: Ctrl-C stops the scan, and the same command goes on from there
        from .cli import ctrl_c_stops, say_skipped

        kinds.remove("atlas")
        t0, bar = time.perf_counter(), TqdmReporter(desc="photos", unit="img")
        with ctrl_c_stops() as stop:
            try:
                atlas = prepare_photos(net, photos, recipe, args.cache, bar, stop)
            finally:
                bar.close()
        say_skipped(atlas.meta)
        if not atlas.complete:
            print(text("prepare.photos_stopped", done=atlas.meta["end"], total=atlas.meta["dataset_size"]),
                  file=sys.stderr)
            return 130
        print(text("prepare.photos_done", n=atlas.n_images, folder=photos.label))
        seconds["atlas"] = time.perf_counter() - t0
    bar = TqdmReporter(desc="prepare")
    try:  # each part's line above the bar (tqdm.write), the bar redrawn under it
        seconds.update(prepare(net, kinds, recipe, args.cache, bar, args.force,
                               log=lambda msg: tqdm.write(msg.text(), file=sys.stderr), dataset=photos or args.dataset))
    finally:
        bar.close()
    print(text("prepare.done", folder=prepared_root(args.cache) / net.name,
               times=", ".join(f"{kind} {secs:.0f} s" for kind, secs in seconds.items())))
    return 0
