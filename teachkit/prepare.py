"""Before class: build everything the lessons show by default into the cache (``teachkit prepare``).

A teacher runs this once (minutes on a laptop CPU); afterwards every page opens on finished
results at once and offers to run the same thing live.  What is prepared:

* **atlas** -- lesson 1's patch atlas of the bundled ``sample`` photos (:func:`teachkit.patches.get_atlas`);
* **gallery** -- finished style transfers of a few content/style pairs (:data:`GALLERY`) with the
  classroom preset (``quick``), with frames from the starting image to the result (lessons 2 and 6);
* **content** -- reconstructions of a photo from each content layer (lesson 4);
* **texture** -- textures matching the Gram matrices up to each style layer (lesson 5).

Each item is a folder under ``<cache>/prepared/<backbone>/`` with PNG files and a ``meta.json``
written last (a folder without it is unfinished and ignored).  Everything runs on teachkit's one
optimisation loop; nothing here imports Streamlit.
"""

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
from .progress import Progress, ProgressCallback, report

__all__ = [
    "CONTENT_LAYERS", "GALLERY", "start_image", "KINDS", "Prepared", "Recipe", "FAST", "FULL", "frame_steps", "load",
    "prepare", "prepare_atlas", "prepare_content", "prepare_texture", "prepare_transfer", "prepared_root",
    "add_prepare_parser", "cmd_prepare",
]

#: the finished transfers of the gallery (content sample, style sample): lessons 2 and 6
GALLERY: tuple[tuple[str, str], ...] = (
    ("chelsea", "stained_glass"),
    ("astronaut", "swirls"),
    ("rocket", "waves"),
    ("coffee", "rings"),
)
#: lesson 4: the layers a photo is rebuilt from (shallow -> deep)
CONTENT_LAYERS: tuple[str, ...] = ("conv1_2", "conv2_2", "conv3_2", "conv4_2", "conv5_2")
KINDS = ("atlas", "gallery", "content", "texture")


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


#: what ``teachkit prepare`` builds (a few minutes on a 2-core laptop; see benchmarks/RESULTS_app.md)
FULL = Recipe()
#: tiny results for tests and very slow machines (``--fast``)
FAST = Recipe(transfer_size=32, transfer_steps=3, content_size=32, content_steps=2, texture_size=32,
              texture_steps=2, atlas_size=48)


def prepared_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``<cache>/prepared``: ``cache_dir``, else ``$TEACHKIT_CACHE``, else ``~/.cache/teachkit``."""
    if cache_dir is None:
        env = os.environ.get("TEACHKIT_CACHE")
        cache_dir = Path(env).expanduser() if env else Path.home() / ".cache" / "teachkit"
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


def _net(backbone):
    if isinstance(backbone, str) or backbone is None:
        from .features import load_backbone

        return load_backbone(backbone or "vgg19")
    return backbone


# ---- the items ---------------------------------------------------------------------------------


def start_image(net, content, style, config):
    """The engine's own starting image G0 for ``content`` (PIL, at the size to work at) and ``config``.

    It is what :class:`teachkit.transfer.StyleTransfer` starts from (white noise for ``init='noise'``,
    content + noise for ``'blend'``), so a page can show the real G before the first step.
    """
    from .images import to_tensor
    from .transfer import StyleTransfer

    styles = None if style is None else [to_tensor(style)]
    return StyleTransfer(to_tensor(content), styles, config, backbone=_net(net)).image()


def prepare_transfer(net, content: str, style: str, recipe: Recipe = FULL, cache_dir=None,
                     callback: ProgressCallback | None = None, force: bool = False) -> Prepared:
    """A finished transfer of two samples with the classroom preset, with frames along the way (gallery)."""
    from .images import resize_long_side
    from .samples import sample_content, sample_style
    from .transfer import TransferConfig, transfer

    net = _net(net)
    folder = _item_dir(prepared_root(cache_dir), net.name, "gallery", content, style)
    if not force and (done := load("gallery", content, style, backbone=net.name, cache_dir=cache_dir)):
        return done
    folder.mkdir(parents=True, exist_ok=True)
    config = TransferConfig.preset("quick", size=recipe.transfer_size, preview_every=1, seed=0,
                                   **({} if recipe.transfer_steps is None else
                                      {"steps": recipe.transfer_steps, "scales": None, "scale_steps": None}))
    keep = set(frame_steps(config.resolved().steps if config.scale_steps is None else sum(config.scale_steps)))
    frames: list[tuple[int, Any]] = []

    def progress(p: Progress):
        if p.image is not None and p.step in keep:
            frames.append((p.step, p.image))
        return report(callback, p)

    c_img = sample_content(content)
    s_img = sample_style(style, recipe.transfer_size)
    result = transfer(c_img, [s_img], config, callback=progress, backbone=net)
    if result.stopped:
        raise KeyboardInterrupt  # a cancelled preparation keeps nothing
    first_side = (result.config.scales or (recipe.transfer_size,))[0]
    start = start_image(net, resize_long_side(c_img, first_side), s_img, config)
    images = [{"file": _save_png(start, folder / "frame_0000.png"), "label": 0}]
    for step, img in frames:
        images.append({"file": _save_png(img, folder / f"frame_{step:04d}.png"), "label": step})
    if not frames or frames[-1][0] != len(result.history):
        images.append({"file": _save_png(result.image, folder / "result.png"), "label": len(result.history)})
    _finish(folder, {"kind": "gallery", "content": content, "style": style, "images": images,
                     "size": recipe.transfer_size, "steps": len(result.history), "seconds": result.seconds,
                     "preset": "quick", "init": config.init, "scales": list(result.config.scales or ()),
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


def prepare_content(net, content: str, recipe: Recipe = FULL, cache_dir=None,
                    callback: ProgressCallback | None = None, force: bool = False) -> Prepared:
    """Lesson 4: a photo rebuilt from white noise out of each layer of :data:`CONTENT_LAYERS`."""
    from .reconstruct import content_reconstructions
    from .samples import sample_content

    net = _net(net)
    if not force and (done := load("content", content, backbone=net.name, cache_dir=cache_dir)):
        return done
    folder = _item_dir(prepared_root(cache_dir), net.name, "content", content)
    folder.mkdir(parents=True, exist_ok=True)
    results = content_reconstructions(net, sample_content(content), CONTENT_LAYERS, size=recipe.content_size,
                                      steps=recipe.content_steps, callback=callback, image_every=recipe.content_steps)
    if len(results) < len(CONTENT_LAYERS) or results[-1].stopped:
        raise KeyboardInterrupt
    _save_results(folder, "content", content, results, recipe.content_size, recipe.content_steps, net, {})
    return load("content", content, backbone=net.name, cache_dir=cache_dir)


def prepare_texture(net, style: str, recipe: Recipe = FULL, cache_dir=None,
                    callback: ProgressCallback | None = None, force: bool = False) -> Prepared:
    """Lesson 5: textures from white noise matching the Gram matrices up to each style layer."""
    from .features import DEFAULT_STYLE_LAYERS
    from .reconstruct import textures
    from .samples import sample_style

    net = _net(net)
    if not force and (done := load("texture", style, backbone=net.name, cache_dir=cache_dir)):
        return done
    folder = _item_dir(prepared_root(cache_dir), net.name, "texture", style)
    folder.mkdir(parents=True, exist_ok=True)
    results = textures(net, sample_style(style, recipe.texture_size), DEFAULT_STYLE_LAYERS, size=recipe.texture_size,
                       steps=recipe.texture_steps, callback=callback, image_every=recipe.texture_steps)
    if len(results) < len(DEFAULT_STYLE_LAYERS) or results[-1].stopped:
        raise KeyboardInterrupt
    _save_results(folder, "texture", style, results, recipe.texture_size, recipe.texture_steps, net, {})
    return load("texture", style, backbone=net.name, cache_dir=cache_dir)


def prepare_atlas(net, dataset: str = "sample", recipe: Recipe = FULL, cache_dir=None,
                  callback: ProgressCallback | None = None):
    """Lesson 1: the atlas of ``dataset`` for the style layers, k = 9 (from the cache, or scanned)."""
    from .features import DEFAULT_STYLE_LAYERS
    from .patches import get_atlas

    atlas_cache = None if cache_dir is None else Path(cache_dir) / "atlases"
    return get_atlas(dataset, backbone=_net(net), layers=DEFAULT_STYLE_LAYERS, k=9, image_size=recipe.atlas_size,
                     callback=callback, cache_dir=atlas_cache)


def prepare(net=None, kinds: Sequence[str] = KINDS, recipe: Recipe = FULL, cache_dir=None,
            callback: ProgressCallback | None = None, force: bool = False, log=None,
            dataset: str = "sample") -> dict[str, float]:
    """Everything of ``kinds`` for the default lessons; returns the seconds each kind took."""
    from .samples import DEFAULT_CONTENT, list_samples

    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown kind {unknown[0]!r}; choose from {', '.join(KINDS)}")
    net = _net(net)
    say = log or (lambda text: None)
    seconds: dict[str, float] = {}
    for kind in KINDS:
        if kind not in kinds:
            continue
        t0 = time.perf_counter()
        if kind == "atlas":
            say(f"atlas: lesson 1's top patches of {dataset!r}")
            prepare_atlas(net, dataset, recipe, cache_dir, callback)
        elif kind == "gallery":
            for content, style in GALLERY:
                say(f"gallery: {content} in the style of {style}")
                prepare_transfer(net, content, style, recipe, cache_dir, callback, force)
        elif kind == "content":
            say(f"content: {DEFAULT_CONTENT} rebuilt from {', '.join(CONTENT_LAYERS)}")
            prepare_content(net, DEFAULT_CONTENT, recipe, cache_dir, callback, force)
        else:
            for style in list_samples()["style"]:
                say(f"texture: {style}")
                prepare_texture(net, style, recipe, cache_dir, callback, force)
        seconds[kind] = time.perf_counter() - t0
    return seconds


# ---- the command line: ``teachkit prepare`` -------------------------------------------------------


def add_prepare_parser(sub) -> None:
    p = sub.add_parser(
        "prepare", help="build into the cache everything the lessons show by default (run it before class)",
        description="Build lesson 1's atlas, the gallery of finished transfers (with their frames from the "
                    "starting image), lesson 4's reconstructions and lesson 5's textures into the cache, so that "
                    "every page of the app opens on finished results at once.",
    )
    p.add_argument("--only", nargs="+", choices=KINDS, metavar="KIND",
                   help=f"prepare only these ({', '.join(KINDS)}; default: all)")
    p.add_argument("--dataset", default="sample", help="lesson 1's dataset: 'sample' (default) or an image folder")
    p.add_argument("--cache", metavar="DIR", help="cache folder (default: $TEACHKIT_CACHE or ~/.cache/teachkit)")
    p.add_argument("--fast", action="store_true", help="tiny sizes and step counts (tests, very slow machines)")
    p.add_argument("--force", action="store_true", help="make every item again, even if it is prepared")
    p.add_argument("--backbone", default="vgg19", help="backbone name (default vgg19)")
    p.set_defaults(func=cmd_prepare)


def cmd_prepare(args: argparse.Namespace) -> int:
    import sys

    from .progress import TqdmReporter

    recipe = FAST if args.fast else FULL
    net = _net(args.backbone)
    bar = TqdmReporter(desc="prepare")
    try:
        seconds = prepare(net, args.only or KINDS, recipe, args.cache, bar, args.force,
                          log=lambda text: print(text, file=sys.stderr), dataset=args.dataset)
    finally:
        bar.close()
    print(f"prepared in {prepared_root(args.cache) / net.name}: "
          + ", ".join(f"{kind} {secs:.0f} s" for kind, secs in seconds.items()))
    return 0
