"""The atlas: every unit's top activations over a dataset (made by :func:`teachkit.patches.scan`), the
patches and activation maps they give, and its ``.npz`` file, checked on loading (a damaged or
hand-edited file is one ``ValueError`` naming it).  ``(y, x)`` is a feature-map position; its box
``(top, left, bottom, right)`` is in pixels of the scanned ``image_size`` square."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import zipfile
from pathlib import Path
from typing import Iterable, NamedTuple, Sequence

import numpy as np
import torch

from .datasets import Dataset, get_dataset
from .fileio import atomic_write
from .messages import Message, TeachkitError, language, text
from .receptive_field import RF, crop_box, unit_box

__all__ = ["FORMAT_VERSION", "Atlas", "AtlasError", "Hit", "ActivationMap", "read_meta", "MAX_IMAGE_SIZE"]

#: Version of the saved atlas format (bumped whenever the arrays or metadata change meaning).
FORMAT_VERSION = 2  # 2: per-photo cap ('per_image') and each entry's source photo
_CACHE_IMAGES = 256  # scanned images an Atlas keeps in memory for cropping
#: Sides a scan accepts and a file may declare (a file claiming 10**6 px would make terabyte-sized crops).
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 16, 4096
_MAX_RF = 1 << 20  # receptive-field sizes, strides and offsets beyond this are not a network's
_MAX_CHANNELS, _MAX_K = 1 << 16, 1 << 14
_MAX_META_BYTES = 1 << 24  # the JSON metadata entry (the 'skipped' list is cut at 200 names)


class AtlasError(TeachkitError, ValueError):
    """A scan argument or an atlas file teachkit cannot use (a ValueError); for a file, ``atlas.invalid``
    with ``path`` and ``problem`` (a :class:`Message`)."""


class AtlasNotFound(TeachkitError, FileNotFoundError):
    """No atlas file at the given path."""


class Hit(NamedTuple):
    """One of a unit's top activations."""

    value: float  # the activation
    image_index: int  # which dataset image
    y: int  # position in the layer's feature map
    x: int
    box: tuple[int, int, int, int]  # receptive field in the scanned image: top, left, bottom, right


class ActivationMap(NamedTuple):
    """A unit's whole activation map over one scanned image."""

    values: np.ndarray  # (h, w) float32
    image: "object"  # the scanned image (PIL, image_size x image_size)
    image_index: int
    layer: str
    unit: int
    peak: tuple[int, int]  # (y, x) of the maximum
    box: tuple[int, int, int, int]  # receptive field of the peak
    rf: RF



def _rf_to_list(rf: RF) -> list:
    return [rf.size, rf.stride, rf.offset, rf.size_x, rf.stride_x, rf.offset_x]


def _rf_from_list(name: str, v: Sequence) -> RF:
    return RF(name, int(v[0]), int(v[1]), float(v[2]), int(v[3]), int(v[4]), float(v[5]))


class Atlas:
    """Every unit's top-``k`` activations over a dataset: per layer, ``(C, k)`` arrays best first (``values``,
    dataset ``images``, ``ys``/``xs``, source photos ``sources``; empty slots ``-inf`` and ``-1``)."""

    def __init__(self, meta: dict, values: dict, images: dict, ys: dict, xs: dict, sources: dict | None = None):
        self.meta = dict(meta)
        self.values = {n: np.asarray(values[n], np.float32) for n in meta["layers"]}
        self.images = {n: np.asarray(images[n], np.int64) for n in meta["layers"]}
        self.ys = {n: np.asarray(ys[n], np.int32) for n in meta["layers"]}
        self.xs = {n: np.asarray(xs[n], np.int32) for n in meta["layers"]}
        self.sources = {n: np.asarray((sources or images)[n], np.int64) for n in meta["layers"]}
        self._square = functools.lru_cache(maxsize=_CACHE_IMAGES)(lambda ds, i: ds.square(i, self.image_size))
        self._dataset: Dataset | None = None
        self._backbone = None
        self.path: Path | None = None

    layers = property(lambda self: list(self.meta["layers"]))
    k = property(lambda self: int(self.meta["k"]))
    n_images = property(lambda self: int(self.meta["n_images"]))
    image_size = property(lambda self: int(self.meta["image_size"]))
    complete = property(lambda self: bool(self.meta["complete"]))
    backbone = property(lambda self: str(self.meta["backbone"]))

    def channels(self, layer: str) -> int:
        return int(self.values[self._layer(layer)].shape[0])

    def rf(self, layer: str) -> RF:
        """The receptive field of ``layer``'s units (in pixels of the scanned image)."""
        layer = self._layer(layer)
        return _rf_from_list(layer, self.meta["rf"][layer])

    def _layer(self, layer: str) -> str:
        if layer not in self.values:
            raise AtlasError("atlas.no_layer", layer=repr(layer), layers=", ".join(self.layers))
        return layer

    def _unit(self, layer: str, unit) -> int:
        layer = self._layer(layer)
        c = self.values[layer].shape[0]
        if isinstance(unit, bool) or not isinstance(unit, (int, np.integer)) or not 0 <= unit < c:
            raise AtlasError("atlas.bad_unit", last=c - 1, layer=layer, unit=repr(unit))
        return int(unit)

    def unit_label(self, layer: str, unit: int, lang: str | None = "en") -> str:
        """'unit = channel 17 of layer relu3_1, receptive field 24×24 px' in ``lang`` (None: the process's)."""
        rf = self.rf(layer)
        return text("viz.unit_label", lang or language(), unit=self._unit(layer, unit), layer=layer,
                    h=rf.size, w=rf.size_x)

    def __repr__(self) -> str:
        m = self.meta
        state = "" if m["complete"] else ", partial"
        return (f"<Atlas {m['backbone']} on {m['dataset_name']} ({m['n_images']} images at "
                f"{m['image_size']} px{state}): k={m['k']}, layers {', '.join(m['layers'])}>")

    def top(self, layer: str, unit: int, n: int | None = None) -> list[Hit]:
        """The unit's best activations, best first: ``Hit(value, image_index, y, x, box)``."""
        unit = self._unit(layer, unit)
        rf = self.rf(layer)
        v, im, ys, xs = (self.values[layer][unit], self.images[layer][unit],
                         self.ys[layer][unit], self.xs[layer][unit])
        hits = [Hit(float(v[j]), int(im[j]), int(ys[j]), int(xs[j]), unit_box(rf, int(ys[j]), int(xs[j])))
                for j in range(v.shape[0]) if im[j] >= 0 and np.isfinite(v[j])]
        return hits[:n]

    def mean_top(self, layer: str) -> np.ndarray:
        """Mean of each unit's kept top values (empty slots ignored), shape (C,)."""
        v = self.values[self._layer(layer)]
        finite = np.isfinite(v)
        return (np.where(finite, v, 0).sum(1) / np.maximum(finite.sum(1), 1)).astype(np.float32)

    def open_dataset(self, dataset: "Dataset | str | None" = None, check: bool = True) -> Dataset:
        """The dataset the atlas was made from (re-opened from its spec if not given): FileNotFoundError
        when the images are gone, ValueError when they changed (``check=False`` skips that test)."""
        if dataset is None:
            if self._dataset is not None:
                return self._dataset
            spec = self.meta.get("dataset_spec")
            if not spec:
                raise AtlasError("atlas.no_spec", name=self.meta["dataset_name"])
            if ("/" in spec or os.sep in spec) and ":" not in spec.split(os.sep)[0] \
                    and not Path(spec).exists():
                raise AtlasNotFound("atlas.images_gone", folder=spec)
            try:
                ds = get_dataset(spec)
            except FileNotFoundError as exc:
                raise AtlasNotFound("atlas.images_missing", detail=exc) from None
        else:
            ds = get_dataset(dataset)
        if check and ds.fingerprint != self.meta["dataset_fingerprint"]:
            raise AtlasError("atlas.other_dataset", name=ds.name, theirs=ds.fingerprint,
                             ours=self.meta["dataset_fingerprint"])
        if dataset is None:
            self._dataset = ds
        return ds

    def scanned_image(self, index: int, dataset: "Dataset | str | None" = None):
        """Dataset image ``index`` as it was scanned (PIL, image_size x image_size)."""
        return self._square(self.open_dataset(dataset), int(index))

    def patches(self, layer: str, unit: int, dataset: "Dataset | str | None" = None,
                n: int | None = None, fill=(128, 128, 128)) -> list:
        """The unit's top patches (PIL, best first): its whole receptive field, the padding in ``fill``."""
        hits = self.top(layer, unit, n)
        ds = self.open_dataset(dataset)
        return [crop_box(self.scanned_image(h.image_index, ds), h.box, fill=fill) for h in hits]

    def activation_map(self, layer: str, unit: int, dataset: "Dataset | str | None" = None,
                       backbone=None, image_index: int | None = None, rank: int = 0) -> ActivationMap:
        """The unit's activation map over one scanned image (default: its best), by a ``backbone`` of the atlas's
        weights (None: loaded on the CPU)."""
        unit = self._unit(layer, unit)
        if image_index is None:
            hits = self.top(layer, unit)
            if not hits:
                raise AtlasError("atlas.unit_empty", layer=layer, unit=unit)
            image_index = hits[min(rank, len(hits) - 1)].image_index
        net = self._get_backbone(backbone)
        ds = self.open_dataset(dataset)
        img = self.scanned_image(image_index, ds)
        x = _pils_to_batch([img], net.device)
        with torch.inference_mode():
            a = net.extract(x, [layer])[layer][0, unit].float().cpu().numpy()
        y0, x0 = np.unravel_index(int(np.argmax(a)), a.shape)
        rf = self.rf(layer)
        return ActivationMap(a.astype(np.float32), img, int(image_index), layer, unit,
                             (int(y0), int(x0)), unit_box(rf, int(y0), int(x0)), rf)

    def _get_backbone(self, backbone):
        from .features import load_backbone

        if backbone is None:
            if self._backbone is None:
                self._backbone = load_backbone(self.backbone, device="cpu")
            backbone = self._backbone
        elif isinstance(backbone, str):
            backbone = load_backbone(backbone, device="cpu")
        wid = getattr(backbone, "weights_id", None)
        if wid != self.meta["weights_id"]:
            raise AtlasError("atlas.other_weights", theirs=wid, ours=self.meta["weights_id"])
        return backbone

    def subset(self, layers: Iterable[str]) -> "Atlas":
        """A new atlas with only ``layers`` (arrays shared)."""
        layers = [self._layer(n) for n in ([layers] if isinstance(layers, str) else layers)]
        meta = dict(self.meta)
        meta["layers"] = layers
        for key in ("channels", "feature_size", "rf"):
            meta[key] = {n: self.meta[key][n] for n in layers}
        out = Atlas(meta, self.values, self.images, self.ys, self.xs, self.sources)
        out._dataset = self._dataset
        out.path = self.path
        return out

    def save(self, path: "str | os.PathLike", compressed: bool = False) -> Path:
        """Write the atlas to one ``.npz`` file (atomically); returns the path."""
        path = Path(path).expanduser()
        if path.is_dir():
            raise AtlasError("atlas.is_folder", path=str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"meta": np.array(json.dumps(self.meta))}
        for i, n in enumerate(self.layers):
            arrays.update({f"L{i}_{key}": getattr(self, key)[n] for key in _DTYPES})
        with atomic_write(path) as f:
            (np.savez_compressed if compressed else np.savez)(f, **arrays)
        self.path = path
        return path

    @classmethod
    def load(cls, path: "str | os.PathLike") -> "Atlas":
        """Read an atlas written by :meth:`save`; any other file is one :class:`AtlasError` naming it."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise AtlasNotFound("atlas.not_found", path=str(path))
        with _reading(path), np.load(path, allow_pickle=False) as z:
            meta = _load_meta(z, path)
            arrays: dict[str, dict] = {key: {} for key in _DTYPES}
            for i, n in enumerate(meta["layers"]):
                for key in arrays:  # files of format 1 have no sources: each image is its own
                    name = f"L{i}_{key}" if key != "sources" or meta["format_version"] > 1 else f"L{i}_images"
                    arrays[key][n] = _read_array(z, name, key, n, (meta["channels"][n], meta["k"]), path)
            _check_arrays(meta, arrays, path)
        atlas = cls(meta, **arrays)
        atlas.path = path
        return atlas


_INT, _STR, _NUM = (int,), (str,), (int, float)
#: What every saved atlas's metadata must hold: key -> accepted types.
_META_TYPES = {
    "format_version": _INT, "backbone": _STR, "weights_id": _STR, "dataset_name": _STR,
    "dataset_spec": (str, type(None)), "dataset_fingerprint": _STR, "dataset_size": _INT, "image_size": _INT,
    "k": _INT, "positions_per_image": _INT, "per_image": _INT, "min_inside": _NUM, "layers": (list,),
    "channels": (dict,), "feature_size": (dict,), "rf": (dict,), "n_images": _INT, "n_skipped": _INT, "skipped": (list,),
    "start": _INT, "end": _INT, "complete": (bool,), "created": _STR, "scan_seconds": _NUM,
}


def _invalid(path, problem: str, **params) -> AtlasError:
    """The one error for a file that is not a well-formed atlas: it names the file and the problem."""
    return AtlasError("atlas.invalid", path=str(path), problem=Message(problem, params))


def _int_in(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _check_rf(rf: list) -> bool:
    """[size, stride, offset, size_x, stride_x, offset_x]: whole positive sizes and strides, all in range."""
    return (all(float(v).is_integer() and 1 <= v <= _MAX_RF for v in (rf[0], rf[1], rf[3], rf[4]))
            and all(abs(float(v)) <= _MAX_RF for v in (rf[2], rf[5])))


def _check_meta(meta, path) -> dict:
    """``meta`` if well formed, else an :class:`AtlasError` naming ``path``; every number that later sizes an
    allocation or an index is bounded here."""
    if not isinstance(meta, dict) or "format_version" not in meta:
        raise _invalid(path, "atlas.no_version")
    meta = {"positions_per_image": 1, "min_inside": 0.0, "per_image": 0, **meta}
    for key, types in _META_TYPES.items():
        value = meta.get(key, _check_meta)
        if value is _check_meta:
            raise _invalid(path, "atlas.lacks", key=key)
        if not isinstance(value, types) or (types in (_INT, _NUM) and isinstance(value, bool)):
            raise _invalid(path, "atlas.bad_value", key=key, value=_short(value))
    if meta["format_version"] > FORMAT_VERSION:
        raise AtlasError("atlas.newer", path=str(path), version=meta["format_version"], known=FORMAT_VERSION)
    layers = meta["layers"]
    if not layers or not all(isinstance(n, str) for n in layers) or len(set(layers)) != len(layers):
        raise _invalid(path, "atlas.bad_layers", value=_short(layers))
    for n in layers:
        rf, ch, fs = meta["rf"].get(n), meta["channels"].get(n), meta["feature_size"].get(n)
        if not (isinstance(rf, list) and len(rf) == 6 and all(isinstance(v, _NUM) and v is not True and v is not False
                                                              for v in rf)):
            raise _invalid(path, "atlas.no_rf", layer=n)
        if not _check_rf(rf):
            raise _invalid(path, "atlas.rf_range", layer=n, value=_short(rf))
        if not (_int_in(ch, 1, _MAX_CHANNELS) and isinstance(fs, list) and len(fs) == 2
                and all(_int_in(v, 1, MAX_IMAGE_SIZE) for v in fs)):
            raise _invalid(path, "atlas.no_shape", layer=n)
    if not _int_in(meta["k"], 1, _MAX_K) or not _int_in(meta["image_size"], 1, MAX_IMAGE_SIZE) \
            or not 0 <= meta["min_inside"] <= 1:
        raise _invalid(path, "atlas.bad_sizes", k=_short(meta["k"]), size=_short(meta["image_size"]),
                       min_inside=_short(meta["min_inside"]), limit=MAX_IMAGE_SIZE)
    for key in ("dataset_size", "per_image"):
        if meta[key] < 0:
            raise _invalid(path, "atlas.bad_value", key=key, value=meta[key])
    return meta


def _short(value, limit: int = 60) -> str:
    """``repr`` of a value from a file, cut short (a hand-made file may hold anything)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_arrays(meta: dict, arrays: dict, path) -> None:
    """Every stored index must point inside the dataset and every position inside its feature map."""
    n = meta["dataset_size"]
    for layer in meta["layers"]:
        for im in (arrays["images"][layer], arrays["sources"][layer]):
            bad = (im < -1) | (im >= n)
            if bad.any():
                raise _invalid(path, "atlas.index_range", layer=layer, index=int(im[bad][0]), n=n)
        h, w = meta["feature_size"][layer]
        used = im >= 0
        ys, xs = arrays["ys"][layer][used], arrays["xs"][layer][used]
        if ((ys < 0) | (ys >= h) | (xs < 0) | (xs >= w)).any():
            raise _invalid(path, "atlas.position_range", layer=layer, h=h, w=w)


_DTYPES = {"values": np.floating, "images": np.integer, "ys": np.integer, "xs": np.integer, "sources": np.integer}


def _entry(z, name: str, limit: int, path) -> np.ndarray:
    """Entry ``name`` of the file, refused before it is read when larger than ``limit`` bytes (a compressed
    entry could unpack to any size)."""
    try:
        size = z.zip.getinfo(f"{name}.npy").file_size
    except KeyError:
        raise _invalid(path, "atlas.missing_array", name=name) from None
    if size > limit:
        raise _invalid(path, "atlas.array_size", name=name)
    return z[name]


def _read_array(z, name: str, key: str, layer: str, shape: tuple[int, int], path) -> np.ndarray:
    arr = _entry(z, name, shape[0] * shape[1] * 8 + 4096, path)
    if arr.shape != shape or not np.issubdtype(arr.dtype, _DTYPES[key]):
        raise _invalid(path, "atlas.array_shape", key=key, layer=layer, shape=_short(arr.shape))
    return arr


def _load_meta(z, path) -> dict:
    return _check_meta(json.loads(str(_entry(z, "meta", _MAX_META_BYTES, path))), path)


@contextlib.contextmanager
def _reading(path):
    """Turn the errors of reading a file that is not an atlas into one AtlasError naming it."""
    try:
        yield
    except AtlasError:
        raise
    except RecursionError:  # JSON nested thousands deep
        raise _invalid(path, "atlas.too_deep") from None
    except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile, OverflowError, MemoryError) as exc:
        raise AtlasError("atlas.unreadable", path=str(path), detail=_short(str(exc) or type(exc).__name__, 200)) \
            from None


def read_meta(path: "str | os.PathLike") -> dict:
    """Only the metadata of a saved atlas (fast: the arrays are not read)."""
    with _reading(path), np.load(Path(path), allow_pickle=False) as z:
        return _load_meta(z, path)


def _pils_to_batch(pils: Sequence, device: torch.device) -> torch.Tensor:
    """Equal-size RGB PIL images -> (N, 3, H, W) float in [0, 1] (channels-last on the CPU)."""
    arr = np.stack([np.asarray(p, dtype=np.uint8) for p in pils])  # N, H, W, 3
    # viewed as N, 3, H, W: channels-last, in which oneDNN's CPU convolutions run markedly faster
    t = torch.from_numpy(arr).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    if device.type != "cpu":
        t = t.contiguous()
    return t
