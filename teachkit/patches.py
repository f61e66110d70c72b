"""Which image patches make a unit (one channel of one layer) fire?  :func:`scan` keeps each unit's running
top-``k`` of (activation, image, position), at most ``per_image`` from one photo, ties to the earlier image,
so that shards :func:`merge` into exactly the scan of the whole.  :func:`get_atlas` caches atlases and finds
the shipped ``sample`` index; the atlas itself lives in :mod:`teachkit.atlas`."""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import importlib.resources
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Sequence

import filelock
import numpy as np
import torch
import torch.nn.functional as F

from .atlas import (FORMAT_VERSION, MAX_IMAGE_SIZE, MIN_IMAGE_SIZE, ActivationMap, Atlas, AtlasError, Hit,
                    _pils_to_batch, _rf_to_list, read_meta)
from .datasets import Dataset, concat_fingerprint, get_dataset
from .features import DEFAULT_STYLE_LAYERS
from .fileio import check_int
from .progress import Progress, ProgressCallback, report
from .receptive_field import RF, receptive_fields, unit_box

__all__ = ["FORMAT_VERSION", "DEFAULT_LAYERS", "DEFAULT_IMAGE_SIZE", "DEFAULT_K", "DEFAULT_BATCH_SIZE",
           "DEFAULT_MIN_INSIDE", "Atlas", "Hit", "ActivationMap", "scan", "merge", "get_atlas", "find_cached",
           "cache_key", "default_cache_dir", "prune_cache", "store", "cache_file", "shipped_dir", "select_units"]

log = logging.getLogger(__name__)

DEFAULT_LAYERS = DEFAULT_STYLE_LAYERS
#: Side of the square the images are scanned at: relu5_1's receptive field (156 px) fits in it.
DEFAULT_IMAGE_SIZE = 160
#: Positions whose receptive field has less of its rows (or columns) inside the image are not candidates.
DEFAULT_MIN_INSIDE = 0.75
DEFAULT_K = 9
#: At most this many of a unit's top patches come from one photo: with 1, nine patches are nine photos,
#: so what they share is the unit's feature, not one picture's subject (0: no cap).
DEFAULT_PER_IMAGE = 1
DEFAULT_BATCH_SIZE = 16



def _resolve_backbone(backbone, device=None):
    from .features import load_backbone

    if isinstance(backbone, str):
        return load_backbone(backbone, device=device)
    if not hasattr(backbone, "extract") or not hasattr(backbone, "body"):
        raise AtlasError("scan.backbone_type", kind=type(backbone).__name__)
    return backbone


def _order_layers(net, layers) -> list[str]:
    if layers is None:
        layers = DEFAULT_LAYERS
    layers = net.check_layers(layers)
    if not layers:
        raise AtlasError("scan.no_layers")
    index = {n: i for i, n in enumerate(net.layer_names)}
    return sorted(dict.fromkeys(layers), key=index.__getitem__)


def _candidates(a: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image's best positions per channel, values and flat positions (C, N*m): the maximum (first on
    ties), or the ``m`` highest 3x3 local peaks (missing ones ``-inf``)."""
    n, c, h, w = a.shape
    if m == 1:
        # a global max pool with indices: the fastest arg-max on channels-last maps; ties: first position
        v, p = F.adaptive_max_pool2d(a, 1, return_indices=True)
        return v.reshape(n, c).t(), p.reshape(n, c).t()
    pooled = F.max_pool2d(a, 3, stride=1, padding=1)
    a = a.masked_fill(a < pooled, float("-inf"))
    m = min(m, h * w)
    if not a.is_contiguous() and a.is_contiguous(memory_format=torch.channels_last):
        # (N, H, W, C) is the contiguous view: take the top m over the middle axis
        v, p = a.permute(0, 2, 3, 1).reshape(n, h * w, c).topk(m, dim=1)  # (N, m, C)
        return v.permute(2, 0, 1).reshape(c, n * m), p.permute(2, 0, 1).reshape(c, n * m)
    v, p = a.reshape(n, c, h * w).topk(m, dim=2)  # (N, C, m)
    return v.permute(1, 0, 2).reshape(c, n * m), p.permute(1, 0, 2).reshape(c, n * m)


def _window(rf: RF, fsize: Sequence[int], size: int, min_inside: float) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)``: the feature-map positions whose field has at least ``min_inside`` of its rows
    (columns) inside the image, or else those with the most."""
    out: list[int] = []
    for n, side, box in ((fsize[0], rf.size, lambda i: unit_box(rf, i, 0, (size, size))[0::2]),
                         (fsize[1], rf.size_x, lambda i: unit_box(rf, 0, i, (size, size))[1::2])):
        inside = np.array([b - a for a, b in map(box, range(n))]) / side
        ok = np.nonzero(inside >= min(min_inside, inside.max()) - 1e-9)[0]
        out += [int(ok[0]), int(ok[-1]) + 1]
    return out[0], out[1], out[2], out[3]


def _pick(v: torch.Tensor, im: torch.Tensor, src: torch.Tensor, k: int, cap: int) -> torch.Tensor:
    """Per row of (C, M) candidates, the columns of the best ``k``: highest value first, the earlier image
    on ties, at most ``cap`` from one source photo (0: no cap; empty entries, source -1, never count).
    Exact on a stream and on shards: an entry left out has ``k`` chosen ones above it for good."""
    order = im.argsort(dim=1, stable=True)
    order = order.gather(1, v.gather(1, order).argsort(dim=1, descending=True, stable=True))
    if cap:  # an entry's rank among its photo's (better ones counted): over the cap goes behind the rest
        s = src.gather(1, order)
        earlier = torch.ones(s.shape[1], s.shape[1], dtype=torch.bool, device=s.device).tril(-1)  # [j, i]: i < j
        rank = ((s[:, :, None] == s[:, None, :]) & earlier).sum(2)
        order = order.gather(1, ((rank >= cap) & (s >= 0)).to(torch.uint8).argsort(dim=1, stable=True))
    return order[:, :k]


class _LayerTop:
    """The running top-k of one layer: values, image indices, source photos, flat positions (each (C, k))."""

    def __init__(self, shape: Sequence[int], k: int, cap: int, device, rf: RF, size: int, min_inside: float) -> None:
        c, h, w = int(shape[1]), int(shape[2]), int(shape[3])
        self.k, self.cap, self.h, self.w = k, cap, h, w
        self.window = _window(rf, (h, w), size, min_inside)
        self.v = torch.full((c, k), float("-inf"), device=device)
        self.i, self.s, self.p = (torch.full((c, k), -1, dtype=torch.int64, device=device) for _ in range(3))

    def add(self, a: torch.Tensor, images: torch.Tensor, sources: torch.Tensor, m: int) -> None:
        """Offer the activations ``a`` (N, C, H, W) of dataset images ``images`` (N,) from ``sources`` (N,)."""
        y0, y1, x0, x1 = self.window
        v, p = _candidates(a[:, :, y0:y1, x0:x1], m)
        if (y0, y1, x0, x1) != (0, self.h, 0, self.w):  # back to whole-map positions
            p = (p // (x1 - x0) + y0) * self.w + p % (x1 - x0) + x0
        per = v.shape[1] // len(images)
        im, s = (t.repeat_interleave(per).unsqueeze(0).expand_as(v) for t in (images, sources))
        if per > 1:  # missing peaks are empty slots
            bad = torch.isneginf(v)
            im, s, p = im.masked_fill(bad, -1), s.masked_fill(bad, -1), p.masked_fill(bad, -1)
        v, i, s, p = (torch.cat(pair, 1) for pair in ((self.v, v.float()), (self.i, im), (self.s, s), (self.p, p)))
        order = _pick(v, i, s, self.k, self.cap)
        self.v, self.i, self.s, self.p = (t.gather(1, order) for t in (v, i, s, p))

    def arrays(self) -> tuple[np.ndarray, ...]:
        """(values, images, ys, xs, sources) as the atlas stores them."""
        p = self.p.cpu().numpy()
        return (self.v.cpu().numpy().astype(np.float32), self.i.cpu().numpy(), np.where(p >= 0, p // self.w, -1),
                np.where(p >= 0, p % self.w, -1), self.s.cpu().numpy())


def _shard_range(n: int, start: int, end: int | None, shard) -> tuple[int, int]:
    if shard is not None:
        try:
            part, parts = (int(s) for s in shard)
        except (TypeError, ValueError):
            raise AtlasError("scan.shard_form", shard=repr(shard)) from None
        if parts < 1 or not 0 <= part < parts:
            raise AtlasError("scan.shard_range", shard=repr(shard))
        return n * part // parts, n * (part + 1) // parts
    end = n if end is None else end
    if not 0 <= start <= end <= n:
        raise AtlasError("scan.image_range", start=start, end=end, n=n)
    return start, end


def _batches(ds: Dataset, start: int, end: int, size: int, batch_size: int, skipped: list[str]):
    """Batches ``(indices, PIL squares, images done)`` of readable images; unreadable ones go to ``skipped``."""
    from .images import ImageError

    index = start
    while index < end:
        pils, idx = [], []
        while len(pils) < batch_size and index < end:
            try:
                pils.append(ds.square(index, size))
                idx.append(index)
            except ImageError as err:
                ds.note_skipped(index, err)
                skipped.append(ds.describe(index))
            index += 1
        yield idx, pils, index - start


def _offer(net, ds: Dataset, layers, tops: dict, new_top, idx: list[int], pils: list, m: int) -> int:
    """One batch through the network; every layer's top-k takes its candidates.  Returns the images used."""
    if not pils:
        return 0
    feats = net.extract(_pils_to_batch(pils, net.device), layers)
    images = torch.tensor(idx, dtype=torch.int64, device=net.device)
    sources = torch.tensor([ds.source(i) for i in idx], dtype=torch.int64, device=net.device)
    for name in layers:
        if name not in tops:
            tops[name] = new_top(name, feats[name].shape)
        tops[name].add(feats[name], images, sources, m)
    return len(pils)


def _scan_meta(net, ds: Dataset, layers, tops: dict[str, _LayerTop], rfs, *, size, k, m, cap, min_inside,
               start, end, n_done, n_scanned, skipped, stopped: str, seconds: float) -> dict:
    return {"format_version": FORMAT_VERSION, "backbone": net.name, "weights_id": net.weights_id,
            "dataset_name": ds.name, "dataset_spec": ds.spec, "dataset_fingerprint": ds.fingerprint,
            "dataset_size": len(ds), "image_size": size, "k": k, "positions_per_image": m, "per_image": cap,
            "min_inside": float(min_inside), "layers": layers, "channels": {n: int(tops[n].v.shape[0]) for n in layers},
            "feature_size": {n: [tops[n].h, tops[n].w] for n in layers}, "rf": {n: _rf_to_list(rfs[n]) for n in layers},
            "n_images": n_scanned, "n_skipped": len(skipped), "skipped": skipped[:200], "start": start,
            "end": start + n_done if stopped else end, "complete": not stopped and start == 0 and end == len(ds),
            "stopped": stopped,  # "" (ran to the end), "stop" (callback / stop event), "time_limit"
            "created": _now(), "scan_seconds": round(seconds, 3)}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def scan(backbone, dataset: "Dataset | str" = "sample", layers: Sequence[str] | None = None, *, k: int = DEFAULT_K,
         image_size: int = DEFAULT_IMAGE_SIZE, positions_per_image: int = 1, per_image: int | None = DEFAULT_PER_IMAGE,
         min_inside: float = DEFAULT_MIN_INSIDE, batch_size: int = DEFAULT_BATCH_SIZE, start: int = 0,
         end: int | None = None, shard: tuple[int, int] | None = None, callback: ProgressCallback | None = None,
         stop: threading.Event | None = None, time_limit: float | None = None) -> Atlas:
    """Every unit's top-``k`` activations in ``layers`` over ``dataset`` scanned as ``image_size`` squares,
    ``positions_per_image`` peaks each, at most ``per_image`` per photo (0: no cap), only at positions with
    ``min_inside`` of their field inside the image.  Images ``start .. end-1`` or the ``shard=(part, parts)``
    share; a stop or ``time_limit`` returns the partial atlas (``meta['stopped']`` says why)."""
    t0 = time.perf_counter()
    net = _resolve_backbone(backbone)
    ds = get_dataset(dataset)
    layers = _order_layers(net, layers)
    k = check_int("k", k, 1)
    if isinstance(min_inside, bool) or not isinstance(min_inside, (int, float)) or not 0 <= min_inside <= 1:
        raise AtlasError("scan.min_inside", value=repr(min_inside))
    m = check_int("positions_per_image", positions_per_image, 1)
    cap = check_int("per_image", per_image or 0, 0)
    size = check_int("image_size", image_size, MIN_IMAGE_SIZE)
    if size > MAX_IMAGE_SIZE:
        raise AtlasError("scan.image_size", size=size, limit=MAX_IMAGE_SIZE)
    batch_size = check_int("batch_size", batch_size, 1)
    start, end = _shard_range(len(ds), check_int("start", start, 0), end, shard)
    deadline = None if time_limit is None else t0 + float(time_limit)
    rfs = receptive_fields(net.body)

    def new_top(name: str, shape) -> _LayerTop:
        return _LayerTop(shape, k, cap, net.device, rfs[name], size, min_inside)

    tops: dict[str, _LayerTop] = {}
    skipped: list[str] = []
    n_done = n_scanned = 0
    stopped = "stop" if report(callback, Progress("scan", 0, end - start), stop) else ""
    with torch.inference_mode():
        for idx, pils, n_done in ([] if stopped else _batches(ds, start, end, size, batch_size, skipped)):
            n_scanned += _offer(net, ds, layers, tops, new_top, idx, pils, m)
            if report(callback, Progress("scan", n_done, end - start), stop):
                stopped = "stop"
            elif deadline is not None and time.perf_counter() > deadline and n_done < end - start:
                stopped = "time_limit"
            if stopped:
                break
        if not tops:  # nothing scanned: shapes from one dry run of a blank image
            feats = net.extract(torch.zeros(1, 3, size, size, device=net.device), layers)
            tops = {n: new_top(n, feats[n].shape) for n in layers}

    arrays = {name: tops[name].arrays() for name in layers}
    meta = _scan_meta(net, ds, layers, tops, rfs, size=size, k=k, m=m, cap=cap, min_inside=min_inside, start=start,
                      end=end, n_done=n_done, n_scanned=n_scanned, skipped=skipped, stopped=stopped,
                      seconds=time.perf_counter() - t0)
    atlas = Atlas(meta, *({n: arrays[n][j] for n in layers} for j in range(5)))
    if ds.spec is None:
        atlas._dataset = ds  # in-memory data cannot be re-opened from a spec
    return atlas


_FIELDS = ("values", "images", "ys", "xs", "sources")
_SAME = ("backbone", "weights_id", "image_size", "k", "positions_per_image", "per_image", "min_inside", "layers")


def merge(a: Atlas, b: Atlas, offset: int | None = None) -> Atlas:
    """One atlas from two, the top-``k`` of their union: shards of one dataset give the scan of the whole; for
    two datasets ``b``'s numbers are shifted by ``offset`` (default ``a``'s size), as in ConcatDataset."""
    for key in _SAME:
        if a.meta[key] != b.meta[key]:
            raise AtlasError("merge.different", key=key, a=repr(a.meta[key]), b=repr(b.meta[key]))
    same_data = a.meta["dataset_fingerprint"] == b.meta["dataset_fingerprint"]
    if offset is None:
        offset = 0 if same_data else int(a.meta["dataset_size"])
    offset = int(offset)
    if same_data and offset == 0:
        if a.meta["start"] < b.meta["end"] and b.meta["start"] < a.meta["end"]:
            raise AtlasError("merge.overlap", a0=a.meta["start"], a1=a.meta["end"], b0=b.meta["start"],
                             b1=b.meta["end"])
    picked: dict[str, dict] = {f: {} for f in _FIELDS}
    for n in a.layers:
        both = {f: np.concatenate([getattr(a, f)[n], getattr(b, f)[n]], 1) for f in _FIELDS}
        for f in ("images", "sources"):  # b's numbers after a's
            both[f][:, a.k:] = np.where(both[f][:, a.k:] >= 0, both[f][:, a.k:] + offset, -1)
        order = _pick(*(torch.from_numpy(both[f]) for f in ("values", "images", "sources")), a.k, a.meta["per_image"])
        for f in _FIELDS:
            picked[f][n] = np.take_along_axis(both[f], order.numpy(), 1)
    meta = dict(a.meta)
    if same_data and offset == 0:
        start, end = min(a.meta["start"], b.meta["start"]), max(a.meta["end"], b.meta["end"])
        contiguous = max(a.meta["start"], b.meta["start"]) == min(a.meta["end"], b.meta["end"])
        complete = contiguous and start == 0 and end == a.meta["dataset_size"]
        meta.update(start=start, end=end, complete=complete,
                    stopped="" if complete else a.meta.get("stopped") or b.meta.get("stopped", ""))
    else:  # when b follows a: the fingerprint of ConcatDataset([dataset_a, dataset_b])
        fingerprints = [a.meta["dataset_fingerprint"], b.meta["dataset_fingerprint"]]
        meta.update(dataset_name=f"{a.meta['dataset_name']}+{b.meta['dataset_name']}", dataset_spec=None,
                    dataset_fingerprint=concat_fingerprint(fingerprints) if offset == a.meta["dataset_size"] else
                    hashlib.sha256(f"{fingerprints[0]}+{offset}+{fingerprints[1]}".encode()).hexdigest()[:20],
                    dataset_size=offset + int(b.meta["dataset_size"]), start=a.meta["start"], end=offset + b.meta["end"],
                    complete=a.complete and b.complete and offset == a.meta["dataset_size"])
    meta.update(n_images=a.n_images + b.n_images, n_skipped=a.meta["n_skipped"] + b.meta["n_skipped"],
                skipped=(a.meta["skipped"] + b.meta["skipped"])[:200], created=_now(),
                scan_seconds=round(a.meta["scan_seconds"] + b.meta["scan_seconds"], 3))
    out = Atlas(meta, *(picked[f] for f in _FIELDS))
    if same_data and offset == 0:
        out._dataset = a._dataset or b._dataset
    return out



def default_cache_dir() -> Path:
    """``<cache>/atlases`` (:func:`teachkit.paths.cache_dir`)."""
    from .paths import cache_dir

    return cache_dir("atlases")


def shipped_dir() -> Path:
    """``teachkit/data``: the atlas *indexes* that ship with the package (no pixels; see its README)."""
    return Path(str(importlib.resources.files("teachkit") / "data"))


def cache_key(backbone: str, weights_id: str, fingerprint: str, image_size: int, k: int, layers: Sequence[str],
              positions_per_image: int = 1, min_inside: float = 0.0, per_image: int = 0) -> str:
    """The hash that names a cached atlas (layer order does not matter)."""
    blob = json.dumps([FORMAT_VERSION, backbone, weights_id, fingerprint, int(image_size), int(k),
                       sorted(layers), int(positions_per_image), float(min_inside), int(per_image)])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


_IDENT = ("backbone", "weights_id", "fingerprint", "image_size", "k", "layers", "positions_per_image", "min_inside",
          "per_image")  # cache_key's arguments: the metadata that names a cached atlas


def _meta_key(name: str) -> str:
    return "dataset_fingerprint" if name == "fingerprint" else name


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)[:40]


def find_cached(cache_dir, **ident) -> Atlas | None:
    """A complete cached atlas for exactly this request (:func:`cache_key`'s arguments), or one with more
    layers (cut down); files that are not atlases are skipped with a warning."""
    cache_dir, layers = Path(cache_dir), ident["layers"]
    if not cache_dir.is_dir():
        return None
    exact = list(cache_dir.glob(f"*_{cache_key(**ident)}.npz"))
    want = {_meta_key(n): v for n, v in {"positions_per_image": 1, "min_inside": 0.0, "per_image": 0, **ident}.items()
            if n != "layers"}
    want["complete"] = True
    for path in exact + [p for p in sorted(cache_dir.glob("*.npz")) if p not in exact]:
        if path.name.startswith("."):  # another writer's file in the making
            continue
        try:
            meta = read_meta(path)
            if any(meta[key] != value for key, value in want.items()) or not set(layers) <= set(meta["layers"]):
                continue
            atlas = Atlas.load(path)
        except ValueError as exc:  # a broken or foreign file: ignore it
            log.warning("ignoring %s: %s", path, exc)
            continue
        return atlas if atlas.layers == list(layers) else atlas.subset(layers)
    return None


#: lock files of a cache folder: a scan locks the bucket its key falls in
LOCK_BUCKETS = 16
#: The cache keeps at most this many atlases and bytes (least recently used go first).
DEFAULT_CACHE_KEEP = 32
DEFAULT_CACHE_BYTES = 512 << 20


def _is_cache_name(name: str) -> bool:
    """Whether ``name`` is one :func:`cache_file` gives: ``..._<16 hex digits>.npz``."""
    stem = name[:-4]
    return name.endswith(".npz") and len(stem) > 17 and stem[-17] == "_" and all(
        c in "0123456789abcdef" for c in stem[-16:])


def _lock_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / f".lock-{int(key, 16) % LOCK_BUCKETS:02d}"


def _lock(cache_dir: Path, key: str):
    """Hold a lock file in the cache, shared by every process (and thread) that builds this atlas (``with``)."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        return filelock.FileLock(str(_lock_path(cache_dir, key))).acquire()  # released when the with ends
    except OSError as exc:  # a read-only cache: scan without it
        log.warning("cannot lock the atlas cache %s (%s); scanning without a lock", cache_dir, exc)
        return contextlib.nullcontext()


def _touch(path: Path | None) -> None:
    """Mark a cached atlas as just used (its modification time orders the cache)."""
    if path is not None:
        with contextlib.suppress(OSError):
            os.utime(path)


def prune_cache(cache_dir: "str | os.PathLike", keep: int = DEFAULT_CACHE_KEEP,
                max_bytes: int = DEFAULT_CACHE_BYTES, spare: "Path | None" = None) -> list[Path]:
    """Delete the least recently used cached atlases beyond ``keep`` files or ``max_bytes`` bytes: only
    files named as :func:`cache_file` names them, never ``spare``.  Returns the deleted paths."""
    cache_dir = Path(cache_dir)
    found = []
    with contextlib.suppress(OSError):
        for path in cache_dir.iterdir():
            if _is_cache_name(path.name):
                with contextlib.suppress(OSError):
                    st = path.stat()
                    found.append((st.st_mtime_ns, st.st_size, path))
    found.sort(key=lambda f: (f[2] != spare, -f[0]))  # newest first, the spared one before all
    deleted, total = [], 0
    for n, (_, size, path) in enumerate(found):
        total += size
        if path != spare and (n >= keep or total > max_bytes):
            with contextlib.suppress(OSError):  # another process may be reading it (Windows): next time
                path.unlink()
                deleted.append(path)
    return deleted


def cache_file(cache_dir: "str | os.PathLike", atlas: Atlas) -> Path:
    """Where :func:`get_atlas` keeps ``atlas`` in ``cache_dir`` (named by its dataset, backbone, size, k, key)."""
    m = atlas.meta
    key = cache_key(*(m[_meta_key(n)] for n in _IDENT))
    return Path(cache_dir) / (f"{_safe(m['dataset_name'])}_{_safe(m['backbone'])}_{m['image_size']}px_"
                              f"k{m['k']}_{key}.npz")


def store(atlas: Atlas, cache_dir: "str | os.PathLike | None" = None, keep: int | None = DEFAULT_CACHE_KEEP) -> Path | None:
    """Save a complete ``atlas`` into the cache (default :func:`default_cache_dir`) and prune the cache
    to ``keep`` atlases (None: no pruning); None when the cache cannot be written (a warning says why)."""
    cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    try:
        path = atlas.save(cache_file(cache_dir, atlas))
    except OSError as exc:  # a read-only cache must not lose the scan
        log.warning("could not save the atlas to the cache %s: %s", cache_dir, exc)
        return None
    if keep is not None:
        prune_cache(cache_dir, keep, spare=path)
    return path


def get_atlas(dataset: "Dataset | str" = "sample", backbone="vgg19", layers: Sequence[str] | None = None,
              k: int = DEFAULT_K, image_size: int | None = None, callback: ProgressCallback | None = None,
              cache_dir: "str | os.PathLike | None" = None, *, positions_per_image: int = 1,
              per_image: int | None = DEFAULT_PER_IMAGE, min_inside: float = DEFAULT_MIN_INSIDE,
              batch_size: int = DEFAULT_BATCH_SIZE, device=None, stop: threading.Event | None = None,
              time_limit: float | None = None, rescan: bool = False, resume: bool = False,
              cache_keep: int | None = DEFAULT_CACHE_KEEP) -> Atlas:
    """The atlas for this request from the cache, the shipped indexes (one with more layers answers too;
    ``rescan`` ignores both) or a scan, cached when complete; callers asking at once scan once (a lock file).
    ``resume``: a stopped scan is kept, and the next call goes on from where it stopped."""
    ds = get_dataset(dataset)
    net = _resolve_backbone(backbone, device)
    layers = _order_layers(net, layers)
    size = DEFAULT_IMAGE_SIZE if image_size is None else image_size
    cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    ident = dict(backbone=net.name, weights_id=net.weights_id, fingerprint=ds.fingerprint, image_size=size, k=k,
                 layers=layers, positions_per_image=positions_per_image, min_inside=float(min_inside),
                 per_image=int(per_image or 0))
    key = cache_key(**ident)
    partial = cache_dir / f"partial_{key}.npz"

    def cached() -> Atlas | None:
        for folder in ([] if rescan else [cache_dir, shipped_dir()]):
            atlas = find_cached(folder, **ident)
            if atlas is not None:
                if folder == cache_dir:
                    _touch(atlas.path)
                if ds.spec is None or atlas._dataset is None:
                    atlas._dataset = ds
                return atlas
        return None

    found = cached()
    if found is not None:
        return found
    with _lock(cache_dir, key):
        found = cached()  # another process or thread may have built it meanwhile
        if found is not None:
            return found
        done = _partial(partial, ds) if resume and not rescan else None
        atlas = scan(net, ds, layers, k=k, image_size=size, positions_per_image=positions_per_image,
                     per_image=per_image, min_inside=min_inside, batch_size=batch_size, callback=callback, stop=stop,
                     time_limit=time_limit, start=done.meta["end"] if done else 0)
        atlas = merge(done, atlas) if done else atlas
        if atlas.complete:
            store(atlas, cache_dir, cache_keep)
            partial.unlink(missing_ok=True)
        elif resume and atlas.meta["end"] > 0:
            try:
                atlas.save(partial)
            except OSError as exc:
                log.warning("could not keep the stopped scan in %s: %s", partial, exc)
        return atlas


def _partial(path: Path, ds: Dataset) -> Atlas | None:
    """The stopped scan of images ``0 .. end-1`` kept at ``path`` (None if there is none, or it is damaged)."""
    try:
        done = Atlas.load(path)
    except (AtlasError, FileNotFoundError) as exc:
        if path.exists():
            log.warning("ignoring %s: %s", path, exc)
        return None
    done._dataset = ds
    return done if done.meta["start"] == 0 and done.meta["dataset_fingerprint"] == ds.fingerprint else None



def _patch_layouts(atlas: Atlas, layer: str, dataset, grid: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """The colour layout (grid x grid mean RGB; padding grey) of every kept patch of ``layer`` and which are
    valid: ``(C, k, grid*grid*3), (C, k)``; each image read once (a summed-area table)."""
    ds = atlas.open_dataset(dataset)
    rf = atlas.rf(layer)
    im = atlas.images[layer]
    c, k = im.shape
    valid = (im >= 0) & np.isfinite(atlas.values[layer])
    desc = np.zeros((c, k, grid * grid * 3), np.float32)
    ys, xs = atlas.ys[layer], atlas.xs[layer]
    tops = rf.start(0) + rf.stride * ys.astype(np.int64)  # unit_box's top/left, for all hits at once
    lefts = rf.start_x(0) + rf.stride_x * xs.astype(np.int64)
    q = np.arange(grid + 1)
    r_edges = (q * rf.size) // grid  # block edges inside the box
    c_edges = (q * rf.size_x) // grid
    for index in np.unique(im[valid]):
        sel = np.nonzero(valid & (im == index))
        img = np.asarray(atlas.scanned_image(int(index), ds), np.float64) / 255.0
        h, w = img.shape[:2]
        sat = np.zeros((h + 1, w + 1, 3))
        sat[1:, 1:] = img.cumsum(0).cumsum(1)
        rows, cols = tops[sel][:, None] + r_edges, lefts[sel][:, None] + c_edges  # (hits, grid + 1) block edges
        R, C = np.clip(rows, 0, h)[:, :, None], np.clip(cols, 0, w)[:, None, :]  # ... inside the image
        R0, R1, C0, C1 = R[:, :-1], R[:, 1:], C[:, :, :-1], C[:, :, 1:]
        s = sat[R1, C1] - sat[R0, C1] - sat[R1, C0] + sat[R0, C0]  # (hits, grid, grid, 3)
        inside = ((R1 - R0) * (C1 - C0))[..., None]
        area = (np.diff(rows)[:, :, None] * np.diff(cols)[:, None, :])[..., None]
        mean = (s + 0.5 * (area - inside)) / np.maximum(area, 1)
        desc[sel] = mean.reshape(len(rows), -1)
    return desc, valid


def select_units(atlas: Atlas, layer: str, how: str = "most_active", n: int = 8, *,
                 dataset: "Dataset | str | None" = None, start: int = 0) -> list[int]:
    """``n`` units of ``layer`` worth showing: 'most_active' (highest mean top-k), 'most_varied' (widest spread
    of their patches' colour layouts, dead units left out) or 'index' (from ``start``)."""
    c = atlas.channels(layer)
    n = check_int("n", n, 1)
    if how == "index":
        start = check_int("start", start, 0)
        return list(range(min(start, c), min(start + n, c)))
    if how == "most_active":
        score = atlas.mean_top(layer)
        return [int(u) for u in np.argsort(-score, kind="stable")[:n]]
    if how == "most_varied":
        desc, valid = _patch_layouts(atlas, layer, dataset)
        cnt = valid.sum(1)
        mean = (desc * valid[..., None]).sum(1) / np.maximum(cnt, 1)[:, None]
        spread = (((desc - mean[:, None, :]) ** 2).sum(-1) * valid).sum(1) / np.maximum(cnt, 1)
        alive = (atlas.mean_top(layer) > 0) & (cnt >= 2)
        spread = np.where(alive, spread, -np.inf)
        order = np.argsort(-spread, kind="stable")
        return [int(u) for u in order[:n] if np.isfinite(spread[u])] or [int(u) for u in order[:n]]
    raise AtlasError("units.how", how=repr(how))
