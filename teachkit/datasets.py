"""Image collections to scan for the units' favourite patches: numbered images (``ds[i]`` is ``(i, image,
description)``) with a ``name``, a ``spec`` that :func:`get_dataset` re-opens, a ``fingerprint`` (a cached
scan is reused only for the very same images) and each image's source photo (:meth:`Dataset.source`)."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import stat
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from .messages import Message, TeachkitError

__all__ = ["Dataset", "SampleDataset", "FolderDataset", "TorchvisionDataset", "TensorDataset", "ConcatDataset",
           "IMAGE_EXTENSIONS", "TORCHVISION_DATASETS", "get_dataset", "resolve_dataset_folder", "FolderRefused",
           "FolderNotAvailable", "DatasetIndexError", "DataRootError", "DatasetError", "DatasetNotFound",
           "fit_square", "dataset_names"]

log = logging.getLogger(__name__)

#: File extensions a folder dataset picks up (compared case-insensitively).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


class DatasetError(TeachkitError, ValueError):
    """A dataset that cannot be scanned as asked (no images, too many files): an id with parameters."""


class DatasetNotFound(TeachkitError, FileNotFoundError):
    """A folder or an on-disk dataset that is not there: an id with parameters."""


class DatasetIndexError(TeachkitError, IndexError):
    """An image number outside a dataset: an id with parameters."""


class DataRootError(TeachkitError, NotADirectoryError):
    """The data root (a teacher's setting) is not a folder: an id with parameters."""


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:20]


def fit_square(img: Image.Image, size: int) -> Image.Image:
    """Scale the short side of ``img`` to ``size`` and cut out the centre ``size`` x ``size``."""
    w, h = img.size
    if (w, h) == (size, size):
        return img
    side = min(w, h)
    left, top = (w - side) / 2, (h - side) / 2
    return img.resize((size, size), Image.BICUBIC, box=(left, top, left + side, top + side), reducing_gap=3.0)


class Dataset:
    """Subclasses implement ``__len__`` and :meth:`load` (ImageError if unreadable) and set ``name``,
    ``spec`` and ``fingerprint``."""

    name: str = "dataset"
    spec: str | None = None
    fingerprint: str = ""

    def __init__(self) -> None:
        self.skip_log: list[str] = []  # unreadable images as "name: problem" lines, in the order met
        self.skipped: list[str] = []  # ... and their names
        self._skipped_idx: set[int] = set()

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def load(self, index: int):
        """Image ``index`` as an RGB PIL image (or a (3, H, W) tensor); ImageError if unreadable."""
        raise NotImplementedError  # pragma: no cover

    def describe(self, index: int) -> str:
        return f"{self.name} #{index}"

    def description(self, index: int) -> "str | Message":
        """What a figure's title calls image ``index``: a name, or a message worded in the figure's language."""
        return self.describe(index)

    def source(self, index: int) -> int:
        """The number of the photo image ``index`` was cut from (the scan caps patches per photo)."""
        return index

    def _check_index(self, index: int) -> int:
        n = len(self)
        if not -n <= index < n:
            raise DatasetIndexError("dataset.index_range", index=index, name=self.name, n=n)
        return index % n

    def __getitem__(self, index: int):
        index = self._check_index(int(index))
        return index, self.load(index), self.describe(index)

    def square(self, index: int, size: int) -> Image.Image:
        """Image ``index`` as the ``size`` x ``size`` RGB picture the network scans."""
        from .images import to_pil

        img = self.load(self._check_index(int(index)))
        return fit_square(to_pil(img) if isinstance(img, torch.Tensor) else img, size)

    def note_skipped(self, index: int, err: Exception) -> None:
        """Record (once) that image ``index`` could not be read."""
        if index in self._skipped_idx:
            return
        self._skipped_idx.add(index)
        name = self.describe(index)
        self.skipped.append(name)
        self.skip_log.append(f"{name}: {getattr(err, 'problem', None) or err}")
        log.warning("skipping unreadable image %s: %s", name, err)

    def items(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, object, str]]:
        """``(index, image, description)`` for indices ``start .. end-1``, skipping unreadable ones."""
        from .images import ImageError

        end = len(self) if end is None else min(end, len(self))
        for i in range(start, end):
            try:
                img = self.load(i)
            except ImageError as err:
                self.note_skipped(i, err)
                continue
            yield i, img, self.describe(i)

    def __iter__(self):
        return self.items()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}: {len(self)} images>"


#: Photos of the ``sample`` dataset: (package, file); teachkit/data/README.md says why these.
SAMPLE_SOURCES: tuple[tuple[str, str], ...] = tuple(("skimage", f) for f in (
    "astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "hubble_deep_field.jpg",
    "ihc.png", "retina.jpg", "color.png", "camera.png", "coins.png", "moon.png", "brick.png", "grass.png",
    "gravel.png", "page.png", "text.png", "cell.png")) + (("matplotlib", "grace_hopper.jpg"),
                                                        ("skimage", "clock_motion.png"))

#: (crop side as a fraction of the photo's short side, step as a fraction of the crop side): the centre
#: square, then smaller crops tiling the photo.
SAMPLE_SCALES: tuple[tuple[float, float], ...] = ((1.0, 1.0), (1 / 2, 1.0), (1 / 3, 1.0), (1 / 4, 1.0), (1 / 5, 1.0))
SAMPLE_MAX_PER_PHOTO = 55  # at most this many crops of one photo (evenly thinned)
SAMPLE_CROP = 128  # side of the items in pixels (the scan resamples the crop directly)
SAMPLE_RECIPE_VERSION = 2


def _positions(length: float, side: float, step: float) -> list[float]:
    """Start coordinates of crops of ``side`` along ``length``, ``step`` apart, centred."""
    n = int(np.floor((length - side) / step + 1e-9)) + 1
    first = (length - side - (n - 1) * step) / 2
    return [first + i * step for i in range(n)]


class SampleDataset(Dataset):
    """The photos bundled with scikit-image and matplotlib, cut into square crops; a photo missing from an
    installation is left out (and changes the fingerprint)."""

    name = "sample"
    spec = "sample"

    def __init__(self, sources: Sequence[tuple[str, str]] = SAMPLE_SOURCES,
                 scales: Sequence[tuple[float, float]] = SAMPLE_SCALES,
                 max_per_photo: int = SAMPLE_MAX_PER_PHOTO) -> None:
        from .samples import package_data_dir

        super().__init__()
        self.sources: list[tuple[str, Path]] = []
        recipe = []
        for package, file in sources:
            try:
                path = package_data_dir(package) / file
            except FileNotFoundError:
                continue
            if not path.is_file():
                log.warning("sample dataset: %s is missing from the installed %s", file, package)
                continue
            with Image.open(path) as im:
                w, h = im.size
            self.sources.append((f"{package}:{file}", path))
            recipe.append((f"{package}:{file}", path.stat().st_size, w, h))
        if not self.sources:
            raise DatasetNotFound("dataset.no_samples")
        # One crop = (source number, left, top, side, scale label).
        self.crops: list[tuple[int, float, float, float, str]] = []
        for s, (_label, w, h) in enumerate((r[0], r[2], r[3]) for r in recipe):
            short = min(w, h)
            mine = []
            for frac, step in scales:
                side = frac * short
                label = "whole" if frac == 1.0 else f"1/{round(1 / frac)}"
                for top in _positions(h, side, step * side):
                    for left in _positions(w, side, step * side):
                        mine.append((s, left, top, side, label))
            if len(mine) > max_per_photo:  # long thin photos would otherwise dominate
                keep = np.linspace(0, len(mine) - 1, max_per_photo).round().astype(int)
                mine = [mine[i] for i in keep]
            self.crops.extend(mine)
        self.fingerprint = _hash({"kind": "sample", "version": SAMPLE_RECIPE_VERSION, "files": recipe,
                                  "scales": [list(s) for s in scales], "max": max_per_photo, "crop": SAMPLE_CROP})
        self._photos: dict[int, Image.Image] = {}

    def __len__(self) -> int:
        return len(self.crops)

    def photo(self, s: int) -> Image.Image:
        """Source photo number ``s`` (RGB, decoded once and kept)."""
        if s not in self._photos:
            from .images import load_image

            self._photos[s] = load_image(self.sources[s][1], name=self.sources[s][0], max_pixels=None)
        return self._photos[s]

    def source(self, index: int) -> int:
        return self.crops[index][0]

    def description(self, index: int) -> Message:
        s, left, top, side, label = self.crops[index]
        file = self.sources[s][0].split(":", 1)[1]
        if label == "whole":
            return Message("dataset.sample_whole", file=file)
        return Message("dataset.sample_crop", file=file, part=label, x=left, y=top)

    def describe(self, index: int) -> str:
        return self.description(index).text("en")

    def square(self, index: int, size: int) -> Image.Image:
        s, left, top, side, _ = self.crops[self._check_index(int(index))]
        box = (left, top, left + side, top + side)
        return self.photo(s).resize((size, size), Image.BICUBIC, box=box, reducing_gap=3.0)

    def load(self, index: int) -> Image.Image:
        return self.square(index, SAMPLE_CROP)



class FolderDataset(Dataset):
    """Every image file under ``root`` (recursively, sorted; no links out of it); unreadable ones are skipped
    when met.  ``label`` names it in messages (the app's: the path inside its data root)."""

    def __init__(self, root: str | os.PathLike, extensions: Sequence[str] = IMAGE_EXTENSIONS, *,
                 max_files: int | None = None, label: str | None = None) -> None:
        super().__init__()
        root = Path(root).expanduser()
        self.label = label if label is not None else str(root)
        if not root.exists():
            raise DatasetNotFound("dataset.no_folder", folder=self.label)
        if not root.is_dir():
            raise DatasetError("dataset.not_folder", folder=self.label)
        self.root = root.resolve()
        files = self._list(tuple(e.lower() for e in extensions), max_files)
        if not files:
            raise DatasetError("dataset.no_images", folder=self.label, exts=", ".join(IMAGE_EXTENSIONS))
        files.sort()
        self.files = [f[0] for f in files]
        self.name = self.root.name or str(self.root)
        self.spec = str(self.root)
        self.fingerprint = _hash({"kind": "folder", "files": files})

    def _list(self, exts: tuple[str, ...], max_files: int | None) -> list[tuple[str, int, int]]:
        """(relative path, size, mtime) of every image file; the walk stops at more than ``max_files`` images or
        20 times as many entries of any kind."""
        def unreadable(err: OSError) -> None:  # a sub-folder that cannot be read is passed over
            if Path(err.filename or "") == self.root:
                raise DatasetError("dataset.unreadable_folder", folder=self.label, problem=err.strerror or err)

        files: list[tuple[str, int, int]] = []
        seen = 0
        for dirpath, dirnames, filenames in os.walk(self.root, onerror=unreadable):
            dirnames.sort()
            seen += len(dirnames) + len(filenames)
            if max_files is not None and seen > 20 * max(max_files, 50):
                raise DatasetError("dataset.too_many_files", folder=self.label, limit=max_files)
            for fn in filenames:
                if not fn.lower().endswith(exts):
                    continue
                p = Path(dirpath) / fn
                try:
                    if not _inside(p.resolve(), self.root):
                        continue  # a link to a file outside the folder
                    st = p.stat()
                except (OSError, RuntimeError):
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue
                files.append((p.relative_to(self.root).as_posix(), st.st_size, st.st_mtime_ns))
                if max_files is not None and len(files) > max_files:
                    raise DatasetError("dataset.too_many_files", folder=self.label, limit=max_files)
        return files

    def __len__(self) -> int:
        return len(self.files)

    def path(self, index: int) -> Path:
        return self.root / self.files[index]

    def describe(self, index: int) -> str:
        return self.files[index]

    def load(self, index: int, size: int | None = None) -> Image.Image:
        from .images import ImageError, load_image

        path = self.path(index)
        if not _inside(path.resolve(), self.root):  # replaced by a link since it was listed
            raise ImageError.about(self.files[index], "image.outside_folder")
        if not path.exists():
            raise ImageError.about(str(path), "image.gone")
        return load_image(path, size=size, name=self.files[index])

    def square(self, index: int, size: int) -> Image.Image:
        """A JPEG is decoded at the smallest scale whose short side still fills the square (its draft mode)."""
        index = self._check_index(int(index))
        try:
            with Image.open(self.path(index)) as im:  # the header only
                long = math.ceil(size * max(im.size) / min(im.size)) if im.format == "JPEG" else None
        except Exception:  # noqa: BLE001 - load() names the problem
            long = None
        return fit_square(self.load(index, long), size)


def _inside(path: Path, root: Path) -> bool:
    """Whether the resolved ``path`` is ``root`` or lies under it (both resolved)."""
    return path == root or path.is_relative_to(root)


class FolderRefused(ValueError):
    """A dataset folder outside the allowed root, missing, or not a folder: one neutral message."""


class FolderNotAvailable(TeachkitError, FolderRefused):
    """:class:`FolderRefused` as teachkit raises it (``dataset.folder_refused``); the app raises the plain one."""


def resolve_dataset_folder(user_text: "str | os.PathLike", root: "str | os.PathLike") -> Path:
    """The folder a visitor typed (relative to ``root``), resolved, if it is a folder inside ``root``; else
    :class:`FolderRefused`, one message whatever the reason."""
    base = Path(root).expanduser().resolve(strict=True)
    if not base.is_dir():
        raise DataRootError("dataset.root_not_folder", root=str(root))
    refused = FolderNotAvailable("dataset.folder_refused")
    text = os.fspath(user_text).strip() if isinstance(user_text, (str, os.PathLike)) else None
    if not text:
        raise refused
    try:
        folder = (base / text).resolve()
        ok = _inside(folder, base) and folder.is_dir()
    except (OSError, RuntimeError, ValueError, TypeError):  # a link loop, a name too long, a NUL byte ...
        ok = False
    if not ok:
        raise refused
    return folder


#: name -> (torchvision class name, how the split is passed, default split, folder inside root)
TORCHVISION_DATASETS: dict[str, tuple[str, str, str, str]] = {
    "cifar10": ("CIFAR10", "train", "test", "cifar-10-batches-py"),
    "cifar100": ("CIFAR100", "train", "test", "cifar-100-python"),
    "stl10": ("STL10", "split", "test", "stl10_binary"),
    "mnist": ("MNIST", "train", "test", "MNIST"),
}


def default_data_root() -> Path:
    """Where torchvision datasets are looked for: $TEACHKIT_DATA, else ``<cache>/datasets``."""
    from .paths import cache_dir

    env = os.environ.get("TEACHKIT_DATA")
    return Path(env).expanduser() if env else cache_dir("datasets")


class TorchvisionDataset(Dataset):
    """A torchvision dataset of :data:`TORCHVISION_DATASETS` already on disk (never downloaded)."""

    def __init__(self, name: str, root: str | os.PathLike | None = None, split: str | None = None) -> None:
        super().__init__()
        key = name.lower()
        if key not in TORCHVISION_DATASETS:
            raise DatasetError("dataset.unknown", name=repr(name), known=", ".join(TORCHVISION_DATASETS))
        cls_name, split_kind, default_split, folder = TORCHVISION_DATASETS[key]
        split = split or default_split
        root = Path(root).expanduser() if root else default_data_root()
        import torchvision.datasets as tvd

        kwargs = {"train": split == "train"} if split_kind == "train" else {"split": split}
        if split_kind == "train" and split not in ("train", "test"):
            raise DatasetError("dataset.split", name=name, split=repr(split))
        try:
            self._ds = getattr(tvd, cls_name)(str(root), download=False, **kwargs)
        except (RuntimeError, FileNotFoundError, OSError) as exc:
            raise DatasetNotFound("dataset.not_on_disk", name=name, root=str(root), detail=exc, cls=cls_name,
                                  key=key) from None
        self.key, self.split, self.root = key, split, root.resolve()
        self.name = key if split == default_split else f"{key}-{split}"
        self.spec = f"{key}:{self.root}" + ("" if split == default_split else f":{split}")
        stats = []
        base = self.root / folder
        if base.is_dir():
            for p in sorted(base.rglob("*"))[:2000]:
                if p.is_file():
                    st = p.stat()
                    stats.append((p.relative_to(self.root).as_posix(), st.st_size, st.st_mtime_ns))
        self.fingerprint = _hash({"kind": "torchvision", "name": key, "split": split, "n": len(self._ds), "files": stats})
        self.classes = list(getattr(self._ds, "classes", []) or [])

    def __len__(self) -> int:
        return len(self._ds)

    def load(self, index: int) -> Image.Image:
        from .images import load_image

        img, _label = self._ds[index]
        return load_image(img, name=self.describe(index), min_side=None)



class TensorDataset(Dataset):
    """Images held in a tensor (N, 3, H, W) in [0, 1]; ``sources``: each image's photo number."""

    def __init__(self, images: torch.Tensor, name: str = "tensors", sources: Sequence[int] | None = None) -> None:
        super().__init__()
        if images.dim() != 4 or images.shape[1] != 3:
            raise DatasetError("dataset.tensor_shape", shape=tuple(images.shape))
        self.images = images.detach().float().cpu()
        self.name = name
        self.spec = None
        self._u8 = (self.images.clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).contiguous().numpy())
        self.sources = list(range(len(self))) if sources is None else [int(s) for s in sources]
        if len(self.sources) != len(self) or not all(0 <= s < len(self) for s in self.sources):
            raise DatasetError("dataset.tensor_sources", n=len(self))
        h = hashlib.sha256(self.images.numpy().tobytes())
        self.fingerprint = _hash({"kind": "tensor", "shape": list(self.images.shape), "data": h.hexdigest(),
                                  **({} if sources is None else {"sources": self.sources})})

    def __len__(self) -> int:
        return self.images.shape[0]

    def source(self, index: int) -> int:
        return self.sources[index]

    def load(self, index: int) -> torch.Tensor:
        return self.images[index]

    def square(self, index: int, size: int) -> Image.Image:
        img = Image.fromarray(self._u8[self._check_index(int(index))], "RGB")
        return img if img.size == (size, size) else fit_square(img, size)


def concat_fingerprint(parts: Sequence[str]) -> str:
    """The fingerprint of datasets put one after the other."""
    return _hash({"kind": "concat", "parts": list(parts)})


class ConcatDataset(Dataset):
    """Several datasets one after the other (indices of the second start after the first's)."""

    def __init__(self, parts: Sequence[Dataset]) -> None:
        super().__init__()
        if not parts:
            raise DatasetError("dataset.concat_empty")
        self.parts = list(parts)
        self.starts = np.cumsum([0] + [len(p) for p in self.parts]).tolist()
        self.name = "+".join(p.name for p in self.parts)
        self.spec = None
        self.fingerprint = concat_fingerprint([p.fingerprint for p in self.parts])

    def __len__(self) -> int:
        return self.starts[-1]

    def _locate(self, index: int) -> tuple[Dataset, int, int]:
        """(part, index in it, the part's first index)"""
        index = self._check_index(int(index))
        j = int(np.searchsorted(self.starts, index, side="right")) - 1
        return self.parts[j], index - self.starts[j], self.starts[j]

    def load(self, index: int):
        part, i, _ = self._locate(index)
        return part.load(i)

    def square(self, index: int, size: int) -> Image.Image:
        part, i, _ = self._locate(index)
        return part.square(i, size)

    def describe(self, index: int) -> str:
        part, i, _ = self._locate(index)
        return f"{part.name}: {part.describe(i)}"

    def source(self, index: int) -> int:
        part, i, start = self._locate(index)
        return start + part.source(i)



def dataset_names() -> list[str]:
    return ["sample", *TORCHVISION_DATASETS]


def get_dataset(spec: "str | os.PathLike | Dataset" = "sample", **kw) -> Dataset:
    """Open a dataset from its spec: ``'sample'``, a folder path, or ``'cifar10[:ROOT[:train]]'`` (and the other
    torchvision ones).  FileNotFoundError for a missing folder or dataset, ValueError for anything else."""
    if isinstance(spec, Dataset):
        return spec
    if spec is None:
        raise DatasetError("dataset.empty_spec")
    text = os.fspath(spec)
    if not text.strip():
        raise DatasetError("dataset.empty_spec")
    if text == "sample":
        if kw:
            raise DatasetError("dataset.sample_options", options=", ".join(kw))
        return SampleDataset()
    head, _, rest = text.partition(":")
    if head.lower() in TORCHVISION_DATASETS and not Path(text).is_dir():
        root, split = rest, ""
        maybe_root, sep, last = rest.rpartition(":")
        if sep and last in _SPLITS:
            root, split = maybe_root, last
        elif rest in _SPLITS:
            root, split = "", rest
        return TorchvisionDataset(head, root=kw.pop("root", None) or root or None,
                                  split=kw.pop("split", None) or split or None)
    path = Path(text).expanduser()
    if path.is_dir():
        return FolderDataset(path, **kw)
    if path.exists():
        raise DatasetError("dataset.is_file", spec=text)
    raise DatasetNotFound("dataset.no_such", spec=text, names=", ".join(dataset_names()))


_SPLITS = ("train", "test", "unlabeled", "train+unlabeled")
