"""What the lesson pages share: language and texts, cached models, uploads, progress, jobs.

The pages stay thin (text + widgets); everything they compute comes from :mod:`teachkit`.  This
module only adapts teachkit to Streamlit:

* **language** -- ``tr(key)`` for short interface labels (``lessons/_strings.py``) and
  ``md(page, section)`` for lesson text (``lessons/text/<lang>/<page>.md``), in the language chosen
  in the sidebar (``st.session_state["lang"]``);
* **cached resources** -- the backbone and the patch atlases are built once per process with
  ``st.cache_resource`` and shared by every session; models are frozen, inference runs under
  ``torch.no_grad``;
* **uploads** -- size and pixel limits, and a readable ``st.error`` instead of a traceback;
* **progress** -- :class:`LiveView`, a teachkit progress callback that draws into the page;
* **background jobs** -- :class:`TransferJob` runs a transfer in a thread with a
  ``threading.Event`` to cancel it; a page polls it with ``st.fragment(run_every=...)``;
* **classroom settings** from environment variables (see :data:`SETTINGS_HELP`).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import streamlit as st

from lessons._strings import UI

# ---- settings ---------------------------------------------------------------------------------

SETTINGS_HELP = """
TEACHKIT_BACKBONE       backbone name (default vgg19, works offline)
TEACHKIT_DEVICE         cpu / cuda / mps (default: the best available)
TEACHKIT_FAST=1         tiny demo sizes and step counts (tests, very slow machines)
TEACHKIT_DEMO_SIZE      long side (px) of every live demo, overriding each page's default
TEACHKIT_DEMO_STEPS     steps of every live demo, overriding each page's default
TEACHKIT_ATLAS_DATASET  dataset the first lesson scans by default ('sample' or a folder)
TEACHKIT_ATLAS_SIZE     side (px) at which the atlas images are scanned (tests: small)
TEACHKIT_CACHE          where scanned atlases are kept on disk (default ~/.cache/teachkit)
TEACHKIT_MAX_JOBS       how many heavy computations may run at once (default 2)
TEACHKIT_DEMO_SECONDS   time limit of the demos of lessons 2-5 (default 25; 0: none)
TEACHKIT_WARMUP=0       do not make the default figures in the background when the app starts
TEACHKIT_UPLOAD_MAX_MB  largest accepted upload in megabytes (default 10)
TEACHKIT_UPLOAD_MAX_MP  largest accepted upload in megapixels (default 25)
"""


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    try:
        return int(raw) if raw else int(default)
    except ValueError:
        return int(default)


def fast_mode() -> bool:
    """TEACHKIT_FAST=1: tiny demos (read at every call, so tests can switch it on)."""
    return _env_flag("TEACHKIT_FAST")

BACKBONE = os.environ.get("TEACHKIT_BACKBONE", "").strip() or "vgg19"
DEVICE = os.environ.get("TEACHKIT_DEVICE", "").strip() or None
UPLOAD_MAX_MB = _env_int("TEACHKIT_UPLOAD_MAX_MB", 10)
UPLOAD_MAX_PIXELS = _env_int("TEACHKIT_UPLOAD_MAX_MP", 25) * 1_000_000
UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff"]
MAX_JOBS = max(1, _env_int("TEACHKIT_MAX_JOBS", 2))


def demo_size(default: int, fast: int = 48) -> int:
    """Long side of a live demo: ``TEACHKIT_DEMO_SIZE``, else ``fast`` under TEACHKIT_FAST, else ``default``."""
    return _env_int("TEACHKIT_DEMO_SIZE", fast if fast_mode() else default)


def demo_seconds() -> float | None:
    """Time limit (s) of a live demo on lessons 2-5: ``TEACHKIT_DEMO_SECONDS``, default 25, 0 = none.

    A demo stops after this long with the image it has, so it ends on time on any machine.
    """
    raw = _env_int("TEACHKIT_DEMO_SECONDS", 25)
    return float(raw) if raw > 0 else None


def demo_steps(default: int, fast: int = 2) -> int:
    """Steps of a live demo: ``TEACHKIT_DEMO_STEPS``, else ``fast`` under TEACHKIT_FAST, else ``default``."""
    return _env_int("TEACHKIT_DEMO_STEPS", fast if fast_mode() else default)


# ---- language ---------------------------------------------------------------------------------

LANGS = {"en": "English", "zh": "中文"}
TEXT_DIR = Path(__file__).parent / "text"
_MARKER = re.compile(r"^<!--\s*@(\w+)\s*-->\s*$", re.M)


def lang() -> str:
    """The language of this session: 'en' or 'zh'."""
    value = st.session_state.get("lang", "en")
    return value if value in LANGS else "en"


def tr(key: str, **fmt: Any) -> str:
    """A short interface string in the session's language (falls back to English)."""
    entry = UI[key]
    text = entry.get(lang()) or entry["en"]
    return text.format(**fmt) if fmt else text


@functools.lru_cache(maxsize=None)
def _sections(language: str, page: str) -> dict[str, str]:
    path = TEXT_DIR / language / f"{page}.md"
    if not path.is_file():
        return {}
    raw = path.read_text(encoding="utf-8")
    parts = _MARKER.split(raw)
    # parts = [before, name1, body1, name2, body2, ...]
    return {parts[i]: parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}


def text(page: str, section: str, **fmt: Any) -> str:
    """One section of a lesson text (``lessons/text/<lang>/<page>.md``, ``<!-- @section -->``)."""
    body = _sections(lang(), page).get(section) or _sections("en", page).get(section)
    if body is None:
        raise KeyError(f"lesson text {page}.md has no section {section!r}")
    return body.format(**fmt) if fmt else body


def md(page: str, section: str, **fmt: Any) -> None:
    """Show one section of a lesson text as Markdown (LaTeX in $...$ and $$...$$)."""
    st.markdown(text(page, section, **fmt))


def choice(widget: Callable, label: str, options: list, key: str, *, default=None, labels: Callable | None = None,
           **kwargs):
    """A choice widget (``st.radio``, ``st.selectbox``, ``st.select_slider``, ...) with translated labels.

    Streamlit identifies the chosen option by its *label*, so a label that changes with the
    language would lose (or garble) the choice on a language switch.  Here the widget key carries
    the language and the chosen option is kept under ``key`` itself, so switching the language
    keeps the choice.  Tests find the widget as ``key + '__' + lang``.
    """
    options = list(options)
    current = st.session_state.get(key, default if default is not None else options[0])
    if current not in options:
        current = default if default in options else options[0]
    wkey = f"{key}__{lang()}"
    if widget is st.select_slider:
        kwargs["value"] = current
    else:
        kwargs["index"] = options.index(current)
    # Labels are fixed now (not looked up later), so the widget's format_func does not depend on state.
    names = {o: (labels(o) if labels else str(o)) for o in options}
    value = widget(label, options, key=wkey, format_func=names.__getitem__, **kwargs)
    st.session_state[key] = value
    return value


def page_title(n: int) -> None:
    st.title(f"{n}. {tr(f'title_{n}')}")


# ---- cached resources -------------------------------------------------------------------------


@st.cache_resource(show_spinner=False)
def _backbone(name: str, device: str | None):
    from teachkit.features import load_backbone

    net = load_backbone(name, device=device)
    net.requires_grad_(False)  # shared by every session: nobody may train it
    net.eval()
    return net


def backbone():
    """The shared, frozen backbone; on failure, a clear error on the page and the page stops."""
    from teachkit.features import BackboneError

    try:
        with st.spinner(tr("loading_backbone")):
            return _backbone(BACKBONE, DEVICE)
    except BackboneError as err:
        st.error(tr("backbone_failed", err=str(err)))
        st.stop()


def device_label() -> str:
    import torch

    net = _backbone(BACKBONE, DEVICE)
    dev = net.device
    if dev.type == "cpu":
        return tr("cpu_threads", n=torch.get_num_threads())
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    return str(dev)


# ---- heavy work: at most MAX_JOBS at a time, for the whole classroom -----------------------------

_SLOTS = threading.BoundedSemaphore(MAX_JOBS)


@contextlib.contextmanager
def compute_slot(stop: threading.Event | None = None, on_wait: Callable[[], None] | None = None) -> Iterator[bool]:
    """Hold one of the MAX_JOBS compute slots while the block runs.

    On a 2-core laptop, thirty students pressing "run" at once would make everybody wait
    forever; with slots, the first ones run at full speed and the rest queue.  ``on_wait`` is
    called once if the slot is not free at once (e.g. to show "waiting for the CPU").  Yields
    False when ``stop`` was set while waiting (the slot is then not held).
    """
    got = _SLOTS.acquire(timeout=0.05)
    if not got and on_wait is not None:
        on_wait()
    while not got:
        if stop is not None and stop.is_set():
            yield False
            return
        got = _SLOTS.acquire(timeout=0.25)
    try:
        yield True
    finally:
        _SLOTS.release()


@contextlib.contextmanager
def slot_on_page() -> Iterator[None]:
    """``compute_slot`` for a computation that runs in the page's own script thread."""
    note = st.empty()
    with compute_slot(on_wait=lambda: note.info(tr("waiting_cpu"))):
        note.empty()
        yield


# ---- images -----------------------------------------------------------------------------------


def samples() -> dict[str, list[str]]:
    from teachkit.images import list_samples

    return list_samples()


@st.cache_data(show_spinner=False, max_entries=64)
def sample(name: str, size: int | None = None):
    """A bundled content or style sample as a PIL image (cached, shared by all sessions)."""
    from teachkit.images import sample_image

    return sample_image(name, size)


def read_upload(file, what: str):
    """Turn an ``st.file_uploader`` value into a PIL RGB image, or show ``st.error`` and return None.

    The byte limit is checked before decoding; teachkit checks the pixel count from the file
    header (decompression bombs) and every other problem, with a message naming the file.
    """
    if file is None:
        return None
    from teachkit.images import ImageError, load_image

    data = file.getvalue()
    if len(data) > UPLOAD_MAX_MB * 1024 * 1024:
        st.error(tr("upload_too_big", name=file.name, mb=len(data) / 2**20, limit=UPLOAD_MAX_MB))
        return None
    try:
        return load_image(data, name=file.name, max_pixels=UPLOAD_MAX_PIXELS)
    except ImageError as err:
        st.error(tr("upload_bad", what=what, err=str(err)))
        return None
    except Exception as err:  # noqa: BLE001 - a decoder bug must not take the page down
        st.error(tr("upload_bad", what=what, err=f"{file.name}: {err}"))
        return None


def image_picker(what: str, key: str, *, kind: str, default: str, upload: bool = True, size: int | None = None):
    """A sample selectbox plus (optionally) an uploader; returns ``(PIL image, label)``.

    A valid upload wins over the sample; a broken one shows an error and the sample is used.
    """
    names = samples()[kind]
    index = names.index(default) if default in names else 0
    name = st.selectbox(tr(f"pick_{kind}"), names, index=index, key=f"{key}_sample")
    img, label = None, name
    if upload:
        file = st.file_uploader(
            tr("upload_label", what=what), type=UPLOAD_TYPES, key=f"{key}_upload",
            max_upload_size=UPLOAD_MAX_MB, help=tr("upload_help", mb=UPLOAD_MAX_MB, mp=UPLOAD_MAX_PIXELS // 10**6),
        )
        img = read_upload(file, what)
        if img is not None:
            label = file.name
    if img is None:
        img = sample(name, size)
    return img, label


def png_bytes(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def fig_png(fig, dpi: int = 100) -> bytes:
    """A teachkit matplotlib figure rendered to PNG bytes (figures are built without pyplot)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    return buf.getvalue()


def show_png(data: bytes, caption: str | None = None) -> None:
    st.image(data, caption=caption, width="stretch")


def show_image(img, caption: str | None = None, width: int | str = "stretch") -> None:
    st.image(img, caption=caption, width=width)


def noise_image(width: int, height: int, seed: int = 0):
    """White noise, the starting point of the lecture's G."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


# ---- progress ---------------------------------------------------------------------------------


class LiveView:
    """A teachkit progress callback (``callback(Progress)``) that draws into the page.

    It shows a progress bar with a short status line and, when the job sends one, the current
    image.  With ``time_limit`` it asks the job to stop (teachkit keeps what it made) once that
    many seconds have passed, so a classroom demo ends on time even on a slow or busy machine.
    The time of the first image is kept (``first_image_s``) and written to
    ``st.session_state['_timings']`` for the benchmark.
    """

    def __init__(self, name: str, *, image_caption: str | None = None, image_width: int | str = "stretch",
                 image_slot=None, show_values: tuple[str, ...] = ("total",), time_limit: float | None = None):
        self.name = name
        self.time_limit = time_limit  # seconds; the job is asked to stop (keeping its result) after it
        self.hit_limit = False
        self.started = time.perf_counter()
        self.bar = st.progress(0.0, text=tr("starting"))
        self.slot = image_slot if image_slot is not None else st.empty()
        self.caption = image_caption
        self.width = image_width
        self.show_values = show_values
        self.first_image_s: float | None = None
        self.last_image = None

    def __call__(self, p) -> bool:
        frac = min(1.0, p.step / p.total) if p.total else 0.0
        shown = "  ".join(f"{k} = {p.values[k]:.3g}" for k in self.show_values if k in p.values)
        status = tr("progress_line", step=p.step, total=p.total or "?", secs=time.perf_counter() - self.started)
        self.bar.progress(frac, text=f"{status}  {shown}".strip())
        if p.image is not None:
            self.last_image = p.image
            self.slot.image(p.image, caption=self.caption, width=self.width)
            if self.first_image_s is None:
                self.first_image_s = time.perf_counter() - self.started
                timings = st.session_state.setdefault("_timings", {})
                timings[self.name] = {"first_image_at": time.time(), "first_image_s": self.first_image_s}
        if self.time_limit is not None and time.perf_counter() - self.started > self.time_limit:
            self.hit_limit = True
            return True
        return False

    def done(self) -> None:
        self.bar.empty()


# ---- the background transfer job (lesson 6) -----------------------------------------------------


class TransferJob:
    """A style transfer running in a background thread, for one session.

    The page starts it and keeps it in ``st.session_state``; the thread calls
    :func:`teachkit.transfer.transfer` with ``stop=self.stop_event`` and a progress callback that
    only stores the latest report (a background thread must not touch Streamlit).  The page polls
    :meth:`snapshot` from a fragment that reruns every fraction of a second; **Cancel** sets the
    event, ``transfer`` returns at the end of the current step with ``stopped=True`` and the latest
    image, which the page then offers for download like a finished result.
    """

    def __init__(self, content, styles, config, net):
        self.content = content
        self.styles = styles
        self.config = config
        self.net = net
        self.stop_event = threading.Event()
        self._lock = threading.Lock()
        self.state = "queued"  # queued -> running -> done | cancelled | failed
        self.step = 0
        self.total = int(config.steps)
        self.values: dict[str, float] = {}
        self.records: list[dict] = []  # weighted cost terms per step, for the live chart
        self.image = None
        self.message = ""
        self.result = None
        self.error: str | None = None
        self.started = time.time()
        self.first_image_at: float | None = None
        self.finished_at: float | None = None
        self._thread = threading.Thread(target=self._run, name="teachkit-transfer", daemon=True)

    def start(self) -> "TransferJob":
        self._thread.start()
        return self

    def cancel(self) -> None:
        self.stop_event.set()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _callback(self, p) -> bool:
        with self._lock:
            self.state = "running"
            self.step, self.total = p.step, p.total or self.total
            self.values = dict(p.values)
            self.message = p.message
            cfg = self.config
            a = 1.0 if cfg.alpha is None else cfg.alpha
            b = 1.0 if cfg.beta is None else cfg.beta
            self.records.append({"step": p.step, "alpha": a, "beta": b, "content": p.values.get("content"),
                                 "style": p.values.get("style"), "total": p.values.get("total")})
            if p.image is not None:
                self.image = p.image
                if self.first_image_at is None:
                    self.first_image_at = time.time()
        return False  # stopping goes through stop_event

    def _run(self) -> None:
        from teachkit.transfer import transfer

        try:
            with compute_slot(self.stop_event) as got:
                if not got:
                    with self._lock:
                        self.state = "cancelled"
                    return
                with self._lock:
                    self.state = "running"
                result = transfer(self.content, self.styles, self.config, callback=self._callback,
                                  stop=self.stop_event, backbone=self.net)
            with self._lock:
                self.result = result
                self.image = result.image
                self.state = "cancelled" if result.stopped else "done"
        except Exception as err:  # noqa: BLE001 - shown on the page, never a traceback
            with self._lock:
                self.error = f"{type(err).__name__}: {err}" if not str(err) else str(err)
                self.state = "failed"
        finally:
            self.finished_at = time.time()

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "state": self.state, "step": self.step, "total": self.total, "values": dict(self.values),
                "image": self.image, "message": self.message, "result": self.result, "error": self.error,
                "records": list(self.records),
                "elapsed": (self.finished_at or time.time()) - self.started,
            }

    def log_json(self) -> str:
        """The cost log of the result: config, history and final costs (TransferResult.to_dict)."""
        if self.result is None:
            return "{}"
        return json.dumps(self.result.to_dict(), indent=1, allow_nan=False)


# ---- the patch atlas of lesson 1: scanned once per process, shared by every session -------------

ATLAS_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
ATLAS_K = 9


def atlas_default_dataset() -> str:
    return os.environ.get("TEACHKIT_ATLAS_DATASET", "").strip() or "sample"


def atlas_image_size() -> int | None:
    """Scan size: ``TEACHKIT_ATLAS_SIZE`` (tests use a small one), else teachkit's default."""
    raw = _env_int("TEACHKIT_ATLAS_SIZE", 0)
    return raw or None


class AtlasBuilder:
    """Builds one atlas (:func:`teachkit.patches.get_atlas`) in a background thread.

    The first session that asks starts it; every session polls the same builder, so a scan that
    the teacher started keeps running when the page is left, and nobody scans twice.  A scan
    that was done before (on disk, see ``TEACHKIT_CACHE``) is loaded in a moment.
    """

    def __init__(self, spec: str, net):
        self.spec = spec
        self.net = net
        self.step = 0
        self.total = 0
        self.atlas = None
        self.error: str | None = None
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="teachkit-atlas", daemon=True)
        self._thread.start()

    def _progress(self, p) -> bool:
        self.step, self.total = p.step, p.total
        return False

    def _run(self) -> None:
        from teachkit.patches import get_atlas

        try:
            with compute_slot():
                self.atlas = get_atlas(self.spec, backbone=self.net, layers=ATLAS_LAYERS, k=ATLAS_K,
                                       image_size=atlas_image_size(), callback=self._progress)
        except Exception as err:  # noqa: BLE001 - shown on the page
            self.error = str(err) or type(err).__name__
        finally:
            self.done.set()


@st.cache_resource(show_spinner=False)
def _atlas_builders() -> tuple[dict, threading.Lock]:
    return {}, threading.Lock()


def atlas_builder(spec: str, net=None) -> AtlasBuilder:
    """The (shared) builder of the atlas of dataset ``spec``; started on first use."""
    net = net if net is not None else backbone()
    builders, lock = _atlas_builders()
    key = (spec, BACKBONE, atlas_image_size())
    with lock:
        b = builders.get(key)
        if b is None:
            b = builders[key] = AtlasBuilder(spec, net)
        return b


def forget_atlas_builder(spec: str) -> None:
    """Drop a failed builder so that the next visit tries again."""
    builders, lock = _atlas_builders()
    with lock:
        builders.pop((spec, BACKBONE, atlas_image_size()), None)


def atlas_key(atlas) -> str:
    m = atlas.meta
    return f"{m['dataset_fingerprint']}-{m['weights_id']}-{m['image_size']}-{m['k']}-{','.join(m['layers'])}"


# ---- numbers and charts of the cost lessons -------------------------------------------------------


def transfer_defaults(normalization: str = "lecture") -> dict:
    """teachkit's tuned alpha / beta / lambda for a normalisation."""
    from teachkit.transfer import NORMALIZATION_DEFAULTS

    return dict(NORMALIZATION_DEFAULTS[normalization])


def weight_options(default: float, decades: int = 3) -> list[float]:
    """0 and the powers of ten around a default weight: ``default * 10**k`` for ``|k| <= decades``.

    The default itself is at index ``decades + 1``.
    """
    default = float(default) if default > 0 else 1.0
    return [0.0] + [float(f"{default * 10.0 ** k:.6g}") for k in range(-decades, decades + 1)]


def fmt_weight(w: float) -> str:
    return "0" if w == 0 else f"{w:g}"


def fmt_ratio(alpha: float, beta: float) -> str:
    if beta == 0:
        return "∞" if alpha > 0 else "–"
    return f"{alpha / beta:.3g}"


def tex_num(x) -> str:
    """A number for st.latex: 1234 -> 1234, 1.2e7 -> 1.20 \\times 10^{7}, nan -> \\text{–}."""
    import math

    if x is None or not math.isfinite(float(x)):
        return r"\text{–}"
    x = float(x)
    if x == 0:
        return "0"
    e = int(math.floor(math.log10(abs(x))))
    if -3 <= e <= 4:
        return f"{x:.4g}"
    return rf"{x / 10 ** e:.2f}\times 10^{{{e}}}"


def cost_formula(terms: dict | None, alpha: float, beta: float) -> str:
    """J(G) = alpha J_content + beta J_style, with the numbers of ``terms`` put in."""
    head = r"J(G) = \alpha\,J_{\text{content}}(C,G) + \beta\,J_{\text{style}}(S,G)"
    if not terms:
        return head
    from teachkit.costs import total_cost

    jc, js = terms.get("content"), terms.get("style")
    try:  # the weights on screen may be newer than the terms: put them together with teachkit's formula
        # a term whose weight is 0 adds nothing (teachkit may not even compute it: nan)
        total = total_cost(float(jc) if alpha else 0.0, float(js) if beta else 0.0, alpha, beta)
    except (TypeError, ValueError):
        total = terms.get("total")
    return (head + rf" = {tex_num(alpha)} \cdot {tex_num(jc)} + {tex_num(beta)} \cdot {tex_num(js)}"
            + rf" = {tex_num(total)}")


def cost_chart(records: list[dict], series: dict[str, Callable[[dict], float]] | None = None):
    """An Altair line chart (log scale) of the cost terms over the steps.

    ``records`` are step records with ``step``, ``alpha``, ``beta``, ``content``, ``style`` and
    ``total`` (the latter three unweighted / total as recorded by teachkit).
    """
    import math

    import altair as alt
    import pandas as pd

    if series is None:
        series = {
            tr("p3_weighted_content"): lambda r: r["alpha"] * r["content"],
            tr("p3_weighted_style"): lambda r: r["beta"] * r["style"],
            tr("p3_total"): lambda r: r["total"],
        }
    rows = []
    for r in records:
        for name, get in series.items():
            try:
                v = float(get(r))
            except (KeyError, TypeError):
                continue
            if math.isfinite(v) and v > 0:
                rows.append({"step": r["step"], "term": name, "value": v})
    df = pd.DataFrame(rows, columns=["step", "term", "value"]).astype({"step": "int64", "term": "string",
                                                                       "value": "float64"})
    order = list(series)
    colours = ["#2563eb", "#c2410c", "#111827"][: len(order)]
    return (
        alt.Chart(df, title=tr("p3_curves"), height=320)
        .mark_line(point=len(records) < 40, strokeWidth=3)
        .encode(
            x=alt.X("step:Q", title=tr("p3_step_axis"), scale=alt.Scale(domainMin=0)),
            y=alt.Y("value:Q", title=None, scale=alt.Scale(type="log"), axis=alt.Axis(format=".0e")),
            color=alt.Color("term:N", sort=order, scale=alt.Scale(domain=order, range=colours),
                            legend=alt.Legend(orient="top", title=None, labelFontSize=15)),
            tooltip=["step", "term", alt.Tooltip("value:Q", format=".3e")],
        )
        .configure_axis(labelFontSize=13, titleFontSize=14)
        .configure_title(fontSize=16)
    )


class StepDemo:
    """Gradient descent one step at a time (lesson 3), kept in ``st.session_state``.

    Wraps :class:`teachkit.transfer.StyleTransfer` (one scale) and keeps what the page shows: one
    record and one small image per step, and the weights used.  G starts as the white noise shown
    on the page (handed to StyleTransfer as its starting image); the StyleTransfer itself is made
    at the first step, so opening the page costs no network pass.  Changing alpha or beta
    continues from the current image with a new StyleTransfer.
    """

    def __init__(self, size: int, content: str, style: str):
        self.size, self.content_name, self.style_name = size, content, style
        self.start_image = noise_image(*sample(content, size).size, seed=0)
        self.reset()

    @classmethod
    def get(cls, key: str, size: int, content: str | None = None, style: str | None = None) -> "StepDemo":
        from teachkit.images import DEFAULT_CONTENT, DEFAULT_STYLE

        content, style = content or DEFAULT_CONTENT, style or DEFAULT_STYLE
        demo = st.session_state.get(key)
        if demo is None or (demo.size, demo.content_name, demo.style_name) != (size, content, style):
            demo = st.session_state[key] = cls(size, content, style)
        return demo

    def reset(self) -> None:
        self.obj = None
        self.alpha = self.beta = None
        self.records: list[dict] = []
        self.snapshots: list = [self.start_image]
        self.running = False
        self.run_until = 0
        self.weights_changed = False

    def _new(self, init):
        from teachkit.images import to_tensor
        from teachkit.transfer import StyleTransfer, TransferConfig

        # tv_weight=0: exactly the lecture's J(G) = alpha J_content + beta J_style, as shown on the page
        config = TransferConfig(size=self.size, alpha=self.alpha, beta=self.beta, tv_weight=0.0, seed=0,
                                preview_every=0)
        return StyleTransfer(to_tensor(sample(self.content_name, self.size)),
                             to_tensor(sample(self.style_name, self.size)), config, init=init, backbone=backbone())

    def set_weights(self, alpha: float, beta: float) -> None:
        self.weights_changed = False
        if (alpha, beta) != (self.alpha, self.beta):
            self.alpha, self.beta = alpha, beta
            if self.obj is not None:  # go on from the current image with the new weights
                self.obj = self._new(self.obj.optimised())
                self.weights_changed = self.steps > 0

    @property
    def steps(self) -> int:
        return len(self.records)

    @property
    def can_step(self) -> bool:
        return bool(self.alpha or self.beta)

    def step(self, n: int = 1) -> None:
        if not self.can_step:
            return
        if self.obj is None:
            from teachkit.images import to_tensor

            self.obj = self._new(to_tensor(self.start_image))
        for rec in self.obj.step(n):
            self.records.append({"step": self.steps + 1, "alpha": self.alpha, "beta": self.beta,
                                 "content": rec["content"], "style": rec["style"], "total": rec["total"]})
        image = self.obj.image()
        if len(self.snapshots) < 400:
            self.snapshots.append(image)
        else:  # keep memory bounded: replace the last one
            self.snapshots[-1] = image
        st.session_state["last_G"] = image  # lesson 5 can compare its Gram matrices with S

    def snapshot(self, i: int):
        return self.snapshots[max(0, min(i, len(self.snapshots) - 1))]

    def terms(self) -> dict:
        """The cost terms of the last step (none before the first step: nothing evaluated yet)."""
        return self.records[-1] if self.records else {}


def texture_demo(style: str, size: int, steps: int, layers: list[str], slot, time_limit: float | None = None):
    """Lesson 5: textures from white noise matching the Gram matrices up to each layer (PNG bytes).

    One :func:`teachkit.reconstruct.synthesize_texture` per set of layers (relu1_1; relu1_1 and
    relu2_1; ...), each within ``time_limit`` seconds; the intermediate textures appear in ``slot``
    while they are made, and teachkit's grid figure replaces them.
    """
    import dataclasses

    from teachkit.reconstruct import reconstruction_grid_figure, synthesize_texture

    target = sample(style, size)
    results = []
    with slot_on_page():
        view = LiveView("lesson5", image_slot=slot, image_width=240, show_values=())
        for i in range(len(layers)):
            def progress(p, i=i):  # one bar over all the textures
                return view(dataclasses.replace(p, step=i * steps + p.step, total=len(layers) * steps))

            results.append(synthesize_texture(backbone(), target, layers[: i + 1], None, steps, callback=progress,
                                              image_every=1, time_limit=time_limit))
        view.done()
    png = fig_png(reconstruction_grid_figure(target, results))
    slot.image(png, width="stretch")
    return png


# ---- cached figures: shared by every session, and warmed up in the background at start ----------
#
# Each figure is made once per process for given settings and kept as PNG bytes, so the second
# student who opens a page gets it at once.  The defaults of lessons 1 and 5 are made right after
# the app starts (warm_up), so even the first visit is quick.

L1_LAYER, L1_HOW = "relu3_1", "most_varied"
L5_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
L5_LAYER, L5_PAIR, L5_TILES = "relu3_1", "most", 4


def l5_size() -> int:
    return demo_size(128, fast=48)


@st.cache_data(show_spinner=False, max_entries=256)
def _units(_atlas, key: str, layer: str, how: str) -> list[int]:
    from teachkit.patches import select_units

    return select_units(_atlas, layer, how, 12)


def units(atlas, layer: str, how: str) -> list[int]:
    """12 units of ``layer`` worth showing (teachkit.patches.select_units)."""
    return _units(atlas, atlas_key(atlas), layer, how)


@st.cache_data(show_spinner=False, max_entries=512)
def _unit_png(_atlas, key: str, layer: str, unit: int) -> bytes:
    from teachkit.viz import unit_figure

    return fig_png(unit_figure(_atlas, None, layer, unit, ncols=3))


def unit_png(atlas, layer: str, unit: int) -> bytes:
    return _unit_png(atlas, atlas_key(atlas), layer, unit)


@st.cache_data(show_spinner=False, max_entries=512)
def _where_png(_atlas, key: str, layer: str, unit: int, rank: int) -> bytes:
    from teachkit.viz import activation_map_figure

    return fig_png(activation_map_figure(_atlas, None, layer, unit, _backbone(BACKBONE, DEVICE), rank=rank))


def where_png(atlas, layer: str, unit: int, rank: int) -> bytes:
    return _where_png(atlas, atlas_key(atlas), layer, unit, rank)


@st.cache_data(show_spinner=False, max_entries=16)
def _overview_png(_atlas, key: str) -> bytes:
    from teachkit.viz import layer_overview_figure

    return fig_png(layer_overview_figure(_atlas, None, n_units=4, how="most_active"), dpi=90)


def overview_png(atlas) -> bytes:
    return _overview_png(atlas, atlas_key(atlas))


def open_png(data: bytes):
    from PIL import Image

    return Image.open(io.BytesIO(data)).convert("RGB")


@st.cache_data(show_spinner=False, max_entries=64)
def pair_png(style: str, layer: str, which: str, size: int) -> bytes:
    """Lesson 5: one entry G_kk' taken apart (teachkit.gram.pair_figure)."""
    from teachkit.gram import pair_figure

    return fig_png(pair_figure(_backbone(BACKBONE, DEVICE), sample(style, size), layer, which=which))


@st.cache_data(show_spinner=False, max_entries=64)
def comparison_png(style: str, g_png: bytes, layer: str, size: int) -> bytes:
    """Lesson 5: G[l](S), G[l](G) and their difference (teachkit.gram.gram_comparison_figure)."""
    from teachkit.gram import gram_comparison_figure

    return fig_png(gram_comparison_figure(_backbone(BACKBONE, DEVICE), sample(style, size), open_png(g_png), layer,
                                          n_channels=32), dpi=85)


@st.cache_data(show_spinner=False, max_entries=64)
def style_layer_costs(style: str, g_png: bytes, size: int) -> dict[str, float]:
    """Lesson 5: J_style[l](S, G) of every layer: one forward pass per image, teachkit's formulas."""
    import torch

    from teachkit.costs import gram_matrix, style_layer_cost
    from teachkit.gram import to_input

    net = _backbone(BACKBONE, DEVICE)
    with torch.no_grad():
        a_s = net.extract(to_input(sample(style, size), device=net.device), L5_LAYERS)
        a_g = net.extract(to_input(open_png(g_png), size, net.device), L5_LAYERS)
    return {l: float(style_layer_cost(gram_matrix(a_s[l][0]), a_g[l][0])) for l in L5_LAYERS}


@st.cache_data(show_spinner=False, max_entries=64)
def shuffle_png(style: str, tiles: int, size: int) -> bytes:
    """Lesson 5: shuffled tiles, Gram vs features (teachkit.gram.position_blindness_figure)."""
    from teachkit.gram import position_blindness_figure

    return fig_png(position_blindness_figure(_backbone(BACKBONE, DEVICE), sample(style, size), tiles=tiles), dpi=90)


def l5_g_png(kind: str, style: str) -> bytes:
    """The image G that lesson 5 compares with S, as PNG bytes (a cache key)."""
    from teachkit.images import DEFAULT_CONTENT

    size = l5_size()
    if kind == "content":
        img = sample(DEFAULT_CONTENT, size)
    elif kind == "noise":
        img = noise_image(size, size)
    elif kind == "style2":
        img = sample(next(n for n in samples()["style"] if n != style), size)
    else:
        img = st.session_state["last_G"]
    return png_bytes(img)


def _warm_up() -> None:
    """Make the default figures of lessons 1 and 5 (and lesson 1's atlas) before anybody asks."""
    import logging

    from teachkit.images import DEFAULT_STYLE

    try:
        net = _backbone(BACKBONE, DEVICE)
        with compute_slot():
            size = l5_size()
            g = l5_g_png("content", DEFAULT_STYLE)
            pair_png(DEFAULT_STYLE, L5_LAYER, L5_PAIR, size)
            comparison_png(DEFAULT_STYLE, g, L5_LAYER, size)
            style_layer_costs(DEFAULT_STYLE, g, size)
            shuffle_png(DEFAULT_STYLE, L5_TILES, size)
        builder = atlas_builder(atlas_default_dataset(), net)
        builder.done.wait()
        if builder.atlas is not None:
            with compute_slot():
                atlas = builder.atlas
                overview_png(atlas)
                first = units(atlas, L1_LAYER, L1_HOW)[0]
                unit_png(atlas, L1_LAYER, first)
                where_png(atlas, L1_LAYER, first, 0)
    except Exception:  # noqa: BLE001 - warming up is only an optimisation
        logging.getLogger(__name__).exception("teachkit app: warm-up failed")


@st.cache_resource(show_spinner=False)
def start_warm_up():
    """Start the warm-up thread once per process (not under TEACHKIT_FAST or TEACHKIT_WARMUP=0)."""
    if fast_mode() or os.environ.get("TEACHKIT_WARMUP", "1").strip() in ("0", "false", "no", "off"):
        return None
    thread = threading.Thread(target=_warm_up, name="teachkit-warm-up", daemon=True)
    thread.start()
    return thread
