"""What every page shares: the backbone, the sample images, and figures made once per process (:func:`cached`),
the default ones by a warm-up thread when the app starts.  Only ``show_*``, :func:`backbone` and :func:`picker` draw.
"""

from __future__ import annotations

import functools
import gc
import inspect
import io
import json
import logging
import os
import threading
import time

import streamlit as st

from teachkit.lessons.guide import PAGE_PX, PROJECTOR_PX, column_px, fontsize_for
from teachkit.lessons.i18n import error_text, has_ui, tr
from teachkit.lessons.settings import BACKBONE, DEVICE, atlas_default_dataset, demo_size, warm_up_wanted

FIGURE_SLOTS = max(1, min(2, os.cpu_count() or 1))  #: figures made at once (apart from the compute slots)
_FIGURE_SEM = threading.BoundedSemaphore(FIGURE_SLOTS)
_PAGES_BUSY = [0]  # page threads making a figure now (the warm-up gives way to them)
_BUSY_LOCK = threading.Lock()
WARM_UP_THREAD = "teachkit-warm-up"


def pages_busy() -> int:
    """How many page threads are making a figure right now."""
    return _PAGES_BUSY[0]


def _atlas_key(atlas) -> str:
    return json.dumps(atlas.meta, sort_keys=True, default=str)


def cached(max_entries: int, figure: bool = True):
    """``st.cache_resource`` shared by every session and the warm-up thread, every spelling of a call one key
    and an atlas known by its metadata.  ``figure``: made in one of FIGURE_SLOTS (a figure function never
    calls another, so a thread waiting for a key never holds a slot that key needs)."""

    def wrap(fn):
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def make(*args):
            if not figure:
                return fn(*args)
            page = threading.current_thread().name != WARM_UP_THREAD
            with _BUSY_LOCK:
                _PAGES_BUSY[0] += page
            try:
                with _FIGURE_SEM:
                    return fn(*args)
            finally:
                with _BUSY_LOCK:
                    _PAGES_BUSY[0] -= page

        store = st.cache_resource(make, max_entries=max_entries, show_spinner=False,
                                  hash_funcs={"teachkit.atlas.Atlas": _atlas_key})

        @functools.wraps(fn)
        def call(*args, **kwargs):
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            return store(*bound.arguments.values())

        call.clear = store.clear
        return call

    return wrap


def light_reruns() -> None:
    """No full garbage collection after every script run (Streamlit's runner.postScriptGC), unless the
    teacher set it: here one walks the whole heap holding the GIL."""
    from streamlit import config

    if config.get_option("runner.postScriptGC") and not config.is_manually_set("runner.postScriptGC"):
        config.set_option("runner.postScriptGC", False)


def freeze_long_lived() -> None:
    """After the warm-up: what lives for the whole process leaves the collector's full collections."""
    gc.collect()
    gc.freeze()


@cached(4, figure=False)
def load_net(name: str = BACKBONE, device: str | None = DEVICE):
    """The shared, frozen backbone (one per process; nobody may train it)."""
    from teachkit.features import load_backbone

    net = load_backbone(name, device=device)
    net.requires_grad_(False)
    net.eval()
    return net


def backbone():
    """The shared backbone for a page; on failure, a clear error on the page and the page stops."""
    from teachkit.features import BackboneError

    try:
        with st.spinner(tr("loading_backbone")):
            return load_net(BACKBONE, DEVICE)
    except BackboneError as err:
        st.error(tr("backbone_failed", err=error_text(err)))
        st.stop()


def backbone_description(net) -> str:
    """The sidebar's line about the network, in the session's language."""
    if net.name == "vgg19":
        return tr("backbone_vgg19")
    return tr("backbone_torchvision", name=net.name.split("-")[0].upper())


def device_label() -> str:
    import torch

    dev = load_net(BACKBONE, DEVICE).device
    if dev.type == "cpu":
        return tr("cpu_threads", n=torch.get_num_threads())
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    return str(dev)


def samples() -> dict[str, list[str]]:
    from teachkit.samples import list_samples

    return list_samples()


@functools.lru_cache(maxsize=1)
def sample_photos() -> tuple[str, ...]:
    """The photos lesson 1's ``sample`` dataset is cut from (file names without extension), for its caption."""
    from pathlib import PurePath

    from teachkit.datasets import get_dataset

    try:
        return tuple(PurePath(src[0].split(":", 1)[-1]).stem for src in get_dataset("sample").sources)
    except Exception:  # noqa: BLE001 - only a caption
        return ()


@functools.lru_cache(maxsize=64)
def sample(name: str, size: int | None = None):
    """A bundled content or style sample as a PIL image (cached, shared by all sessions: do not modify)."""
    from teachkit.samples import sample_image

    return sample_image(name, size)


_UPLOADS: dict[str, object] = {}
_UPLOADS_LOCK = threading.Lock()
_MAX_UPLOADS = 64


def register_upload(img) -> str:
    """Keep an uploaded picture for the cached figures under ``'upload:<hash of its pixels>'``, a key only a
    session that has the picture can name."""
    import hashlib

    key = "upload:" + hashlib.sha256(img.tobytes() + repr(img.size).encode()).hexdigest()[:24]
    with _UPLOADS_LOCK:
        _UPLOADS.pop(key, None)
        _UPLOADS[key] = img
        while len(_UPLOADS) > _MAX_UPLOADS:
            _UPLOADS.pop(next(iter(_UPLOADS)))
    return key


def picture(key: str, size: int | None = None):
    """A sample by name, or an upload by its key, resized to ``size`` on the long side."""
    if not key.startswith("upload:"):
        return sample(key, size)
    from teachkit.images import resize_long_side

    with _UPLOADS_LOCK:
        img = _UPLOADS[key]
    return img if size is None else resize_long_side(img, size)


def png_bytes(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def open_png(data: bytes):
    from PIL import Image

    return Image.open(io.BytesIO(data)).convert("RGB")


#: Streamlit re-encodes (and shrinks) images wider than this many pixels, losing the PNG's metadata
MAX_IMAGE_PX = 1400


def fig_png(fig, dpi: int = 144) -> bytes:
    """A figure as PNG bytes: sharp on high-density screens, but never wider than MAX_IMAGE_PX."""
    from teachkit.viz import figure_png

    return figure_png(fig, dpi=min(dpi, int(MAX_IMAGE_PX / fig.get_figwidth())))


def show_png(data: bytes, caption: str | None = None) -> None:
    """A figure made for the column it is shown in (its text sizes assume that width)."""
    st.image(data, caption=caption, width="stretch")


_PREPARED: dict[tuple, object] = {}


def prepared(kind: str, *names: str):
    """A prepared item (``teachkit.prepare.load``), kept in memory once found; None if not prepared."""
    key = (kind, *names)
    item = _PREPARED.get(key)
    if item is None:
        from teachkit.prepare import load

        item = load(kind, *names, backbone=BACKBONE)
        if item is not None:
            _PREPARED[key] = item
    return item


@cached(128, figure=False)
def real_start(content_key: str, size: int, config):
    """The engine's starting image G0 (:func:`teachkit.transfer.initial_image`), kept per process."""
    from teachkit.transfer import initial_image

    return initial_image(picture(content_key, size), config)


def show_image(img, caption: str | None = None, width: int | str = "stretch") -> None:
    st.image(img, caption=caption, width=width)


def noise_image(width: int, height: int, seed: int = 0):
    """White noise exactly as the engine starts from it (teachkit.transfer.white_noise)."""
    from teachkit.images import to_pil
    from teachkit.transfer import white_noise

    return to_pil(white_noise((1, 3, height, width), seed))


L1_LAYER, L1_HOW = "relu1_1", "most_active"  # where the teacher's note starts
L5_LAYER, L5_PAIR, L5_TILES = "relu3_1", "most", 4
L5_DECADES = 2  #: lesson 5's lambda sliders span 10**-2 .. 10**2 times the tuned weight


def l5_size() -> int:
    return demo_size(128, fast=48)


@functools.lru_cache(maxsize=256)
def units(atlas, layer: str, how: str) -> tuple[int, ...]:
    """12 units of ``layer`` worth showing (teachkit.patches.select_units)."""
    from teachkit.patches import select_units

    return tuple(select_units(atlas, layer, how, 12))


#: figure widths (inches) and the columns they are shown in on a 1280-px page (lessons/guide.py)
UNIT_FIG_IN, UNIT_COLS = 5.0, (1, 1.25)
MAP_FIG_IN = 5.5
OVERVIEW_FIG_IN = 11.0


@cached(512)
def unit_png(atlas, layer: str, unit: int, lang: str = "en", px: int = 14) -> bytes:
    """Lesson 1: a unit's nine top patches (left column)."""
    from teachkit.viz import unit_figure

    return fig_png(unit_figure(atlas, None, layer, unit, ncols=3, lang=lang, width=UNIT_FIG_IN,
                               fontsize=fontsize_for(UNIT_FIG_IN, column_px(UNIT_COLS, 0), px)))


@cached(512)
def where_png(atlas, layer: str, unit: int, rank: int, lang: str = "en", px: int = 14) -> bytes:
    """Lesson 1: where a top patch sits in its image, and the unit's activation map (right column)."""
    from teachkit.viz import activation_map_figure

    return fig_png(activation_map_figure(atlas, None, layer, unit, load_net(), rank=rank, lang=lang, stacked=True,
                                         width=MAP_FIG_IN, fontsize=fontsize_for(MAP_FIG_IN, column_px(UNIT_COLS, 1), px)))


@cached(16)
def overview_png(atlas, lang: str = "en", px: int = 14) -> bytes:
    """Lesson 1: nine units per layer (3 x 3, as on the course's slide), two layers per row (one with the
    projector's larger text)."""
    from teachkit.viz import layer_overview_figure

    columns = 1 if px >= PROJECTOR_PX else 2
    return fig_png(layer_overview_figure(atlas, None, n_units=9, how="most_active", lang=lang, columns=columns,
                                         width=OVERVIEW_FIG_IN, fontsize=fontsize_for(OVERVIEW_FIG_IN, PAGE_PX, px)))


@cached(64)
def l5_pair(style: str, layer: str, which: str, size: int) -> tuple[int, int, float]:
    """Lesson 5: the two channels k, k' shown (``'most'`` or ``'least'`` correlated on S): (k, k', r)."""
    from teachkit.gram import layer_activation, pick_pair

    return pick_pair(layer_activation(load_net(), picture(style, size), layer), which)


def pair_png(style: str, layer: str, which: str, size: int, lang: str = "en", px: int = 14) -> bytes:
    """Lesson 5: the entry G_kk' of the pair ``which`` (``'most'`` or ``'least'`` correlated)."""
    k, k2, _ = l5_pair(style, layer, which, size)
    return pair_png_kk(style, layer, k, k2, size, lang, px)


@cached(128)
def pair_png_kk(style: str, layer: str, k: int, k2: int, size: int, lang: str = "en", px: int = 14) -> bytes:
    """Lesson 5: the entry G_kk' of any two channels a student picks; ``px``: the smallest text."""
    from teachkit.gram import pair_figure, text_size

    with text_size(px):
        return fig_png(pair_figure(load_net(), picture(style, size), layer, k=int(k), k2=int(k2), lang=lang))


def layer_channels(layer: str) -> int:
    """How many channels ``layer`` of the shared backbone has (lesson 5's k and k' inputs)."""
    return int(load_net().channels[layer])


@cached(64)
def comparison_png(style: str, g_png: bytes, layer: str, size: int, lang: str = "en", px: int = 14) -> bytes:
    """Lesson 5: G[l](S), G[l](G) and their difference (teachkit.gram.gram_comparison_figure)."""
    from teachkit.gram import gram_comparison_figure, text_size

    with text_size(px):
        return fig_png(gram_comparison_figure(load_net(), picture(style, size), open_png(g_png), layer, lang=lang))


@cached(64)
def style_layer_costs(style: str, g_png: bytes, size: int, layers: tuple[str, ...]) -> dict[str, float]:
    """Lesson 5: J_style[l](S, G) of every layer -- the same computation as the heatmaps' titles."""
    from teachkit.gram import style_layer_costs as costs

    return costs(load_net(), picture(style, size), open_png(g_png), list(layers))


@cached(64)
def bars_png(values: tuple, weights: tuple, lang: str = "en", px: int = 14) -> bytes:
    """Lesson 5: lambda[l] J_style[l] per layer (teachkit.gram.style_cost_bars_figure)."""
    from teachkit.gram import style_cost_bars_figure, text_size

    with text_size(px):
        return fig_png(style_cost_bars_figure(dict(values), weights=dict(weights), lang=lang))


@cached(64)
def shuffle_png(style: str, tiles: int, size: int, lang: str = "en", px: int = 14) -> bytes:
    """Lesson 5: shuffled tiles, Gram vs features (teachkit.gram.position_blindness_figure)."""
    from teachkit.gram import position_blindness_figure, text_size

    with text_size(px):
        return fig_png(position_blindness_figure(load_net(), picture(style, size), tiles=tiles, lang=lang))


def l5_g_png(kind: str, style: str, last_g=None) -> bytes:
    """The image G that lesson 5 compares with S, as PNG bytes (a cache key)."""
    from teachkit.samples import DEFAULT_CONTENT

    size = l5_size()
    if kind == "content":
        img = sample(DEFAULT_CONTENT, size)
    elif kind == "noise":
        img = noise_image(size, size)
    elif kind == "style2":
        img = sample(next(n for n in samples()["style"] if n != style), size)
    else:
        img = last_g
    return png_bytes(img)


def _warm_up() -> None:
    """The default figures of lessons 1 and 5, what ``teachkit prepare`` has not made, the figures one control
    away.  A plain thread: only the cached functions above and teachkit."""
    if warm_figures():
        prepare_missing()
        warm_controls()
    freeze_long_lived()


def _default_atlas():
    from teachkit.features import DEFAULT_STYLE_LAYERS
    from teachkit.lessons import jobs
    from teachkit.lessons.settings import atlas_default_dataset

    builder = jobs.atlas_builder(atlas_default_dataset(), load_net(), DEFAULT_STYLE_LAYERS)
    builder.done.wait()
    return builder.atlas


def _make_all(makers, what: str) -> bool:
    """Call each maker, giving way first to pages making a figure and to clicks on "Step"."""
    from teachkit.lessons.jobs import quick_running

    try:
        for make in makers:
            end = time.monotonic() + 30.0
            while (pages_busy() or quick_running()) and time.monotonic() < end:
                time.sleep(0.05)
            make()
        return True
    except Exception:  # noqa: BLE001 - warming up is only an optimisation
        logging.getLogger(__name__).exception("teachkit app: warming %s failed", what)
        return False


def l5_default_weights() -> dict[str, float]:
    """Lesson 5's lambda[l] sliders as they start: teachkit's tuned weights."""
    from teachkit.features import DEFAULT_STYLE_LAYERS
    from teachkit.lessons.charts import transfer_defaults, weight_options

    ws = transfer_defaults()["layer_weights"]
    return {name: weight_options(w, decades=L5_DECADES)[L5_DECADES + 1] for name, w in zip(DEFAULT_STYLE_LAYERS, ws)}


def _l5_costs(g: bytes) -> tuple:
    from teachkit.features import DEFAULT_STYLE_LAYERS
    from teachkit.samples import DEFAULT_STYLE

    return tuple(style_layer_costs(DEFAULT_STYLE, g, l5_size(), tuple(DEFAULT_STYLE_LAYERS)).items())


def warm_figures(langs: tuple[str, ...] = ("en", "zh")) -> bool:
    """The default figures of lessons 1 and 5 as the pages ask for them (lesson 1 first), then lesson 1's
    at the projector's text size; True when all went well."""
    from teachkit.samples import DEFAULT_STYLE

    def makers():
        atlas, size = _default_atlas(), l5_size()
        first = units(atlas, L1_LAYER, L1_HOW)[0] if atlas is not None else None
        for lang in langs:
            if atlas is not None:
                yield from (lambda: overview_png(atlas, lang), lambda: unit_png(atlas, L1_LAYER, first, lang),
                            lambda: where_png(atlas, L1_LAYER, first, 0, lang))
            g = l5_g_png("content", DEFAULT_STYLE)
            yield from (lambda: pair_png(DEFAULT_STYLE, L5_LAYER, L5_PAIR, size, lang),
                        lambda: comparison_png(DEFAULT_STYLE, g, L5_LAYER, size, lang),
                        lambda: bars_png(_l5_costs(g), tuple(l5_default_weights().items()), lang),
                        lambda: shuffle_png(DEFAULT_STYLE, L5_TILES, size, lang))
            if atlas is not None and L5_LAYER in atlas.layers:
                yield lambda: [unit_png(atlas, L5_LAYER, k, lang) for k in l5_pair(DEFAULT_STYLE, L5_LAYER, L5_PAIR,
                                                                                   size)[:2]]
        for lang in langs if atlas is not None else ():
            yield from (lambda: overview_png(atlas, lang, PROJECTOR_PX),
                        lambda: unit_png(atlas, L1_LAYER, first, lang, PROJECTOR_PX),
                        lambda: where_png(atlas, L1_LAYER, first, 0, lang, PROJECTOR_PX))

    return _make_all(makers(), "the default figures")


def warm_controls(langs: tuple[str, ...] = ("en", "zh")) -> None:
    """The figures one change of a control away from the defaults of lessons 1 and 5, so that a control
    answers from the cache."""
    from teachkit.features import DEFAULT_STYLE_LAYERS
    from teachkit.lessons.charts import weight_options
    from teachkit.samples import DEFAULT_STYLE

    def makers():
        atlas, size = _default_atlas(), l5_size()
        weights = l5_default_weights()
        for lang in langs:
            if atlas is not None:
                for layer in atlas.layers:
                    for how in ("most_active", "most_varied"):
                        for unit in units(atlas, layer, how)[: 3 if (layer, how) == (L1_LAYER, L1_HOW) else 1]:
                            yield from (lambda a=(atlas, layer, unit, lang): unit_png(*a),
                                        lambda a=(atlas, layer, unit, 0, lang): where_png(*a))
                first = units(atlas, L1_LAYER, L1_HOW)[0]
                yield from (lambda r=r: where_png(atlas, L1_LAYER, first, r, lang) for r in (1, 2))
            for layer in DEFAULT_STYLE_LAYERS:
                for which in ("most", "least"):
                    yield lambda a=(DEFAULT_STYLE, layer, which, size, lang): pair_png(*a)
                    if atlas is not None and layer in atlas.layers:  # the two channels' top patches
                        yield lambda a=(layer, which): [unit_png(atlas, a[0], u, lang) for u in
                                                        l5_pair(DEFAULT_STYLE, a[0], a[1], size)[:2]]
                yield lambda a=(DEFAULT_STYLE, l5_g_png("content", DEFAULT_STYLE), layer, size, lang): \
                    comparison_png(*a)
            for kind in ("noise", "style2"):
                g = l5_g_png(kind, DEFAULT_STYLE)
                yield lambda g=g: comparison_png(DEFAULT_STYLE, g, L5_LAYER, size, lang)
                yield lambda g=g: bars_png(_l5_costs(g), tuple(weights.items()), lang)
            yield from (lambda t=t: shuffle_png(DEFAULT_STYLE, t, size, lang) for t in range(2, 9))
            values = _l5_costs(l5_g_png("content", DEFAULT_STYLE))
            for name, w in weights.items():  # one lambda slider moved
                for option in weight_options(w, decades=L5_DECADES):
                    yield lambda m=tuple({**weights, name: option}.items()): bars_png(values, m, lang)

    _make_all(makers(), "the controls' figures")


def prepare_missing() -> None:
    """Whatever ``teachkit prepare`` has not made yet, one kind at a time, each in a compute slot."""
    from teachkit.lessons import jobs
    from teachkit.lessons.settings import fast_mode
    from teachkit import prepare

    log = logging.getLogger(__name__)
    recipe = prepare.FAST if fast_mode() else prepare.FULL
    try:
        for kind in ("gallery", "visualize", "content", "texture"):
            with jobs.compute_slot(long=True, background=True):  # after every student's computation
                prepare.prepare(load_net(), [kind], recipe, log=log.info, dataset=atlas_default_dataset())
    except Exception:  # noqa: BLE001 - the pages offer to run everything live anyway
        log.exception("teachkit app: preparing the default results failed")


_WARM_UP: list[threading.Thread] = []
_WARM_UP_LOCK = threading.Lock()


def start_warm_up() -> threading.Thread | None:
    """Start the warm-up thread once per process (not under TEACHKIT_FAST or TEACHKIT_WARMUP=0)."""
    if not warm_up_wanted():
        return None
    with _WARM_UP_LOCK:
        if not _WARM_UP:
            thread = threading.Thread(target=_warm_up, name=WARM_UP_THREAD, daemon=True)
            thread.start()
            _WARM_UP.append(thread)
        return _WARM_UP[0]


def sample_label(name: str) -> str:
    """A sample's name in the session's language (uploads keep their file name)."""
    return tr(f"sample_{name}") if has_ui(f"sample_{name}") else name


def picker(kind: str, key: str, default: str | None = None, *, tucked: bool = True) -> tuple[str, str]:
    """A sample selectbox plus an uploader (``tucked`` in a closed expander): ``(picture key, label)``; a valid
    upload wins over the sample, a broken one shows an error."""
    from teachkit.lessons import uploads

    from teachkit.lessons.i18n import choice

    names = samples()[kind]
    name = choice(st.selectbox, tr(f"pick_{kind}"), names, f"{key}_sample", default=default, labels=sample_label)
    box = st.expander(tr("upload_own")) if tucked else st.container()
    with box:
        img, filename = uploads.uploader(tr(f"what_{kind}"), f"{key}_upload")
    if img is not None:
        return register_upload(img), filename
    return name, sample_label(name)
