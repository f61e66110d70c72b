"""Images in and out of teachkit: an image is an RGB ``PIL.Image``, or on the network side a ``(1, 3, H, W)``
float tensor in ``[0, 1]``.

:func:`load_image` takes a path, bytes, a file, a PIL image, an array or a tensor and gives 8-bit RGB (EXIF
orientation applied; grey, 16/32-bit, palette, CMYK converted; transparency painted white; ``size`` scales
the long side); every problem is one :class:`ImageError` naming the file, e.g. ``cannot read 'photo.jpg':
file is truncated or corrupt``.  :func:`check_output_path` checks before a long computation that a result
can be written; :func:`save_image` writes it.  The bundled samples live in :mod:`teachkit.samples`.
"""

from __future__ import annotations

import contextlib
import io
import os
import pathlib
import stat
import tempfile
import threading

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .fileio import atomic_write
from .messages import Message, TeachkitError

__all__ = ["ImageError", "MAX_PIXELS", "MIN_SIDE", "OUTPUT_EXTENSIONS", "load_image", "check_upload", "tensor_image",
           "to_tensor", "to_pil", "resize_long_side", "resize_to", "check_output_path", "OUTPUT_KINDS", "save_image"]

#: Default limit on an input's pixels, checked from the header before decoding (also against bombs).
MAX_PIXELS = 40_000_000
MIN_SIDE = 16  #: default smallest short side: VGG halves the image several times

_EXIF_ORIENTATION = 0x0112  # the EXIF tag of a photo's orientation (1 = upright)

#: File extensions that :func:`save_image` can write, and the PIL format of each.
OUTPUT_EXTENSIONS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF",
                     ".tiff": "TIFF"}



#: what was being done with the file -> the id of the sentence around the problem
_VERBS = {"read": "image.cannot_read", "use": "image.cannot_use", "write": "image.cannot_write",
          "find": "image.cannot_find"}


class ImageError(TeachkitError, ValueError):
    """One readable message naming the file and the problem: ``cannot read 'photo.jpg': file is truncated or
    corrupt``, with its parts ``source``, ``problem`` (a :class:`Message`) and ``verb``."""

    def __init__(self, source: str, problem: Message, verb: str = "read"):
        self.source = source
        self.problem = problem
        self.verb = verb
        super().__init__(_VERBS[verb], source=source, problem=problem)

    @classmethod
    def about(cls, source: str, problem_id: str, /, verb: str = "read", **params) -> "ImageError":
        """Build (not raise) the error ``cannot <verb> '<source>': <problem_id with params>``."""
        return cls(source, Message(problem_id, params), verb)


_fail = ImageError.about



def load_image(source, *, size: int | None = None, name: str | None = None, max_pixels: int | None = MAX_PIXELS,
               min_side: int | None = MIN_SIDE) -> Image.Image:
    """An 8-bit RGB PIL image from a path, bytes, a binary file, a PIL image, an array (HxW[x1|3|4]; uint8,
    uint16, bool or float in [0, 1]) or a tensor in [0, 1], its long side scaled to ``size``; every problem is
    an :class:`ImageError` naming ``name`` (default: the path, ``'<bytes>'``, ...)."""
    label = name if name is not None else _describe(source)
    _check_size_argument(size, min_side, label)  # before reading a file that would be refused anyway

    if _is_encoded(source):
        img = _with_encoded(source, label, lambda f: _decode(f, label, size, max_pixels, min_side))
    elif isinstance(source, Image.Image):
        img = _from_pil(source, label, max_pixels, min_side)
    elif isinstance(source, np.ndarray):
        img = _from_array(source, label)
        _check_dimensions(img.size, label, max_pixels, min_side)
    elif isinstance(source, torch.Tensor):
        img = to_pil(tensor_image(source, label))
        _check_dimensions(img.size, label, max_pixels, min_side)
    else:
        raise _fail(label, "image.unknown_source", kind=type(source).__name__)

    if size is not None:
        _check_resized(img.size, size, label, max_pixels, min_side)
        img = resize_long_side(img, size)
    return img


def check_upload(
    source, *, max_pixels: int | None = MAX_PIXELS, min_side: int | None = MIN_SIDE, name: str | None = None,
) -> tuple[int, int]:
    """For untrusted uploads: ``(width, height)`` from the header only of an encoded image (a file is put back
    where it was), its pixels and short side checked before a single pixel is decoded."""
    label = name if name is not None else _describe(source)
    if not _is_encoded(source):
        raise _fail(label, "image.not_encoded")
    start = None
    with contextlib.suppress(Exception):  # a path, bytes, or a file that cannot tell
        start = source.tell()

    def header(file) -> tuple[int, int]:
        img = _open_header(file, label)
        _check_dimensions(img.size, label, max_pixels, min_side)
        return img.size

    try:
        return _with_encoded(source, label, header)
    finally:
        if start is not None:
            with contextlib.suppress(Exception):
                source.seek(start)


def _is_encoded(source) -> bool:
    """Whether ``source`` holds an encoded image file (path, bytes, binary file object)."""
    return isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)) or (
        hasattr(source, "read") and not isinstance(source, Image.Image))


def _with_encoded(source, label: str, use):
    """Call ``use(binary_file)`` on a path, bytes or file object, with the checks on the way."""
    if isinstance(source, (str, os.PathLike)):
        return _load_path(source, label, use)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise _fail(label, "image.empty")
        return use(io.BytesIO(data))
    return _load_file_object(source, label, use)


def _describe(source) -> str:
    """The default name of a source in error messages."""
    if isinstance(source, (str, os.PathLike)):
        return os.fsdecode(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<bytes>"
    if isinstance(source, Image.Image):
        return "<PIL image>"
    if isinstance(source, np.ndarray):
        return "<array>"
    if isinstance(source, torch.Tensor):
        return "<tensor>"
    file_name = getattr(source, "name", None)
    if isinstance(file_name, str) and file_name:
        return file_name
    if hasattr(source, "read"):
        return "<file>"
    return f"<{type(source).__name__}>"


def _check_size_argument(size, min_side, label: str) -> None:
    if size is None:
        return
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise _fail(label, "image.size_not_whole", verb="use", size=repr(size))
    if size < max(1, min_side or 0):
        raise _fail(label, "image.size_too_small", verb="use", size=size, min=max(1, min_side or 0))


def _check_dimensions(dims: tuple[int, int], label: str, max_pixels, min_side) -> None:
    """Refuse zero-size, too-big and too-small images (from the header size)."""
    width, height = dims
    if width <= 0 or height <= 0:
        raise _fail(label, "image.zero_size", width=width, height=height)
    if max_pixels is not None and width * height > max_pixels:
        raise _fail(label, "image.too_many_pixels", width=width, height=height, pixels=f"{width * height:,}",
                    limit=f"{max_pixels:,}")
    if min_side is not None and min(width, height) < min_side:
        raise _fail(label, "image.too_small", width=width, height=height, min=min_side)


def _check_resized(dims: tuple[int, int], size: int, label: str, max_pixels, min_side) -> None:
    """The size once the long side is scaled to ``size``: scaling up can be far too big, a strip too thin."""
    width, height = _long_side_dims(dims, size)
    if max_pixels is not None and width * height > max_pixels:
        raise _fail(label, "image.resized_too_many_pixels", verb="use", size=size, width=width, height=height,
                    pixels=f"{width * height:,}", limit=f"{max_pixels:,}")
    if min_side is not None and min(width, height) < min_side:
        raise _fail(label, "image.resized_too_small", verb="use", size=size, width=width, height=height,
                    min=min_side)


def _load_path(path, label: str, use):
    if os.fspath(path) in ("", b""):
        raise _fail(label, "image.no_name")
    path = pathlib.Path(os.fsdecode(path)).expanduser()
    if path.is_dir():
        raise _fail(label, "image.is_directory")
    try:
        # O_NONBLOCK: opening a FIFO would wait for a writer forever; it is refused below by its type
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise _fail(label, "image.not_found") from None
    except IsADirectoryError:
        raise _fail(label, "image.is_directory") from None
    except PermissionError:
        raise _fail(label, "image.permission") from None
    except OSError as err:
        raise _fail(label, "image.os_error", detail=err.strerror or str(err)) from None
    with open(fd, "rb") as file:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _fail(label, "image.not_regular")
        if st.st_size == 0:
            raise _fail(label, "image.empty")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return use(file)


def _load_file_object(file, label: str, use):
    if isinstance(file, io.TextIOBase):
        raise _fail(label, "image.text_mode")
    # PIL needs to seek; some file objects (pipes, sockets, HTTP bodies) can't.
    try:
        seekable = file.seekable() if hasattr(file, "seekable") else hasattr(file, "seek")
        if not seekable:
            data = file.read()
            if isinstance(data, str):
                raise _fail(label, "image.text_mode")
            file = io.BytesIO(data)
        else:
            start = file.tell()
            file.seek(0, io.SEEK_END)
            length = file.tell() - start
            file.seek(start)
            if length == 0:
                raise _fail(label, "image.empty")
    except ImageError:
        raise
    except Exception as err:  # noqa: BLE001 - any failure of a foreign file object
        raise _fail(label, "image.file_object", detail=str(err)) from None
    return use(file)


def _open_header(file, label: str) -> Image.Image:
    """``Image.open``: the header only; every failure -> ImageError.  PIL's own bomb guard stays a backstop
    (no global of PIL's or of warnings is touched: not thread-safe)."""
    try:
        img = Image.open(file)
    except UnidentifiedImageError:
        raise _fail(label, "image.not_image") from None
    except Image.DecompressionBombError:
        raise _fail(label, "image.bomb") from None
    except (OSError, SyntaxError, ValueError, EOFError, TypeError, MemoryError, IndexError) as err:
        raise _fail(label, "image.truncated", detail=str(err)) from None
    except Exception as err:  # noqa: BLE001 - plugins can raise almost anything
        raise _fail(label, "image.corrupt", detail=f"{type(err).__name__}: {err}") from None
    return img


def _decode(file, label: str, size, max_pixels, min_side) -> Image.Image:
    """Decode an image from an open binary file, with all the checks, to RGB."""
    img = _open_header(file, label)
    _check_dimensions(img.size, label, max_pixels, min_side)  # before decoding the pixels
    if size is not None and img.format == "JPEG":  # decode at the smallest of 1/2, 1/4, 1/8 that still fills size
        with contextlib.suppress(Exception):  # only an optimisation
            img.draft(None, _long_side_dims(img.size, size))
    _load_pixels(img, label)
    rgb = _to_rgb(img, label)
    if rgb is img and size is None:
        rgb = img.copy()  # detach from the open file (with a size, the resized image is new anyway)
    return rgb


_switch_lock = threading.Lock()  # guards the two counters below
_decoding = 0  # how many of our decodes are running
_switched_off = False  # whether we turned PIL's LOAD_TRUNCATED_IMAGES off (and must turn it back on)


def _load_pixels(img: Image.Image, label: str) -> None:
    """Decode the pixels, refusing truncated files: if other code switched PIL's global
    ``LOAD_TRUNCATED_IMAGES`` on, it is off while any of our decodes runs (counted under a lock)."""
    global _decoding, _switched_off
    with _switch_lock:
        if _decoding == 0:
            _switched_off = bool(ImageFile.LOAD_TRUNCATED_IMAGES)
            if _switched_off:
                ImageFile.LOAD_TRUNCATED_IMAGES = False
        _decoding += 1
    try:
        _decode_pixels(img, label)
    finally:
        with _switch_lock:
            _decoding -= 1
            if _decoding == 0 and _switched_off:
                ImageFile.LOAD_TRUNCATED_IMAGES = True
                _switched_off = False


def _decode_pixels(img: Image.Image, label: str) -> None:
    try:
        img.load()
    except Image.DecompressionBombError:
        raise _fail(label, "image.too_large") from None
    except MemoryError:
        raise _fail(label, "image.no_memory") from None
    except (OSError, SyntaxError, ValueError, EOFError, TypeError, IndexError, KeyError) as err:
        raise _fail(label, "image.truncated", detail=str(err)) from None
    except Exception as err:  # noqa: BLE001 - plugins can raise almost anything
        raise _fail(label, "image.corrupt", detail=f"{type(err).__name__}: {err}") from None


def _from_pil(img: Image.Image, label: str, max_pixels, min_side) -> Image.Image:
    _check_dimensions(img.size, label, max_pixels, min_side)
    _load_pixels(img, label)  # a lazily opened image may still be unread
    return _to_rgb(img, label)


def _to_rgb(img: Image.Image, label: str) -> Image.Image:
    """EXIF orientation applied, any mode made 8-bit RGB, without a full-size copy that is not needed (a
    25-megapixel upload is 75-100 MB per copy)."""
    with contextlib.suppress(Exception):  # a broken EXIF block should not stop us
        if img.getexif().get(_EXIF_ORIENTATION, 1) != 1:
            img = ImageOps.exif_transpose(img)  # a turned copy (without a tag it would copy too)

    try:
        mode = img.mode
        if mode == "RGB" and "transparency" not in img.info:
            return img
        if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
            return _wide_gray_to_rgb(img)
        has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
        if has_alpha:  # painted over white, not whatever colour the transparent pixels hide
            rgba = img if mode == "RGBA" else img.convert("RGBA")
            rgb = Image.new("RGB", rgba.size, (255, 255, 255))
            rgb.paste(rgba, mask=rgba)  # the alpha band is the mask
            return rgb
        # L, 1, P, CMYK, YCbCr, LAB, HSV, RGBX ...: PIL knows how.
        return img.convert("RGB")
    except Exception as err:  # noqa: BLE001
        raise _fail(label, "image.colour_mode", mode=img.mode, detail=str(err)) from None


_BAND_PIXELS = 1 << 18  #: pixels converted at a time by _wide_gray_to_rgb (~2 MB of float64 per copy)


def _wide_gray_to_rgb(img: Image.Image) -> Image.Image:
    """16/32-bit integer or float grey -> 8-bit RGB, a band of rows at a time: 0..65535, [0, 1] or [0, 255]
    as such (PIL's own convert clips at 255), any other range stretched from the file's own min..max."""
    width, height = img.size
    rows = max(1, _BAND_PIXELS // max(1, width))
    bands = [(y, min(height, y + rows)) for y in range(0, height, rows)]

    def band(y0: int, y1: int) -> np.ndarray:
        values = np.asarray(img.crop((0, y0, width, y1)), dtype=np.float64)
        return np.nan_to_num(values) if img.mode == "F" else values

    lo, hi = 0.0, 65535.0  # I;16: nothing to look at
    if img.mode in ("I", "F"):
        ranges = [(float(v.min()), float(v.max())) for v in (band(y0, y1) for y0, y1 in bands if y1 > y0)]
        lo, hi = min((r[0] for r in ranges), default=0.0), max((r[1] for r in ranges), default=0.0)
    nominal = (1.0, 255.0) if img.mode == "F" else (65535.0,)
    top = next((n for n in nominal if lo >= 0 and hi <= n), None)
    offset, scale = (0.0, 255.0 / top) if top else (lo, 255.0 / (hi - lo) if hi > lo else 0.0)
    gray = np.empty((height, width), np.uint8)
    for y0, y1 in bands:
        gray[y0:y1] = np.rint(np.clip((band(y0, y1) - offset) * scale, 0, 255))
    return Image.fromarray(gray, "L").convert("RGB")


def _from_array(array: np.ndarray, label: str) -> Image.Image:
    """A numpy image (HxW, HxWx1/3/4) -> RGB PIL image."""
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[2] not in (3, 4):
        raise _fail(label, "image.channels_first", shape=a.shape)
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))):
        raise _fail(label, "image.array_shape", shape=a.shape)
    if a.size == 0:
        raise _fail(label, "image.zero_size_shape", shape=a.shape)

    if a.dtype == np.uint8:
        pixels = a
    elif a.dtype == np.bool_:
        pixels = a.astype(np.uint8) * 255
    elif a.dtype == np.uint16:
        pixels = np.rint(a.astype(np.float64) * (255.0 / 65535.0)).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        if not np.all(np.isfinite(a)):
            raise _fail(label, "image.not_finite")
        low, high = float(a.min()), float(a.max())
        if low < -1e-3 or high > 1 + 1e-3:
            raise _fail(label, "image.float_range_255" if high <= 255 and low >= 0 else "image.float_range",
                        low=f"{low:g}", high=f"{high:g}")
        pixels = np.rint(np.clip(a, 0, 1) * 255).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.integer):
        low, high = int(a.min()), int(a.max())  # e.g. int64 from np.array([...]): fine if it holds 0..255
        if low < 0 or high > 255:
            raise _fail(label, "image.int_range", low=low, high=high)
        pixels = a.astype(np.uint8)
    else:
        raise _fail(label, "image.array_dtype", dtype=a.dtype)

    if pixels.ndim == 2:
        return Image.fromarray(np.ascontiguousarray(pixels), "L").convert("RGB")
    if pixels.shape[2] == 4:
        return _to_rgb(Image.fromarray(np.ascontiguousarray(pixels), "RGBA"), label)
    return Image.fromarray(np.ascontiguousarray(pixels), "RGB")


def tensor_image(t: torch.Tensor, label: str = "<tensor>") -> torch.Tensor:
    """The one check of an image given as a tensor: ``([1,] 1|3, H, W)`` float, finite, in [0, 1] ->
    ``(1, 3, H, W)`` float32 on the CPU, else an :class:`ImageError` naming ``label``."""
    shape = tuple(t.shape)
    if t.dim() == 4 and shape[0] == 1:
        t = t[0]
    if t.dim() != 3 or t.shape[0] not in (1, 3):
        raise _fail(label, "image.tensor_shape", shape=shape)
    if t.shape[1] == 0 or t.shape[2] == 0:
        raise _fail(label, "image.zero_size_shape", shape=shape)
    if t.is_complex():
        raise _fail(label, "image.complex")
    values = t.detach().to("cpu", torch.float32)
    if not torch.isfinite(values).all():
        raise _fail(label, "image.not_finite")
    if not t.is_floating_point():
        raise _fail(label, "image.tensor_dtype", dtype=t.dtype)
    low, high = float(values.min()), float(values.max())
    if low < -1e-3 or high > 1 + 1e-3:
        raise _fail(label, "image.float_range", low=f"{low:g}", high=f"{high:g}")
    return values.expand(3, -1, -1).unsqueeze(0).clamp(0, 1)



def to_tensor(img: Image.Image, device=None) -> torch.Tensor:
    """PIL image -> ``(1, 3, H, W)`` float32 tensor with values in ``[0, 1]``."""
    if not isinstance(img, Image.Image):
        raise TypeError(f"to_tensor expects a PIL image, not {type(img).__name__}")
    if img.mode != "RGB":
        img = _to_rgb(img, "<PIL image>")
    pixels = np.array(img, dtype=np.uint8)  # H x W x 3, a private copy
    t = torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0)
    t = t.to(torch.float32).div_(255.0).contiguous()
    return t.to(device) if device is not None else t


def to_pil(t: torch.Tensor) -> Image.Image:
    """``(1, 3, H, W)`` or ``(3, H, W)`` tensor -> RGB PIL image (clamped to [0, 1], rounded to 256 levels)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"to_pil expects a torch tensor, not {type(t).__name__}")
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"to_pil expects a single image, got a batch of {t.shape[0]}")
        t = t[0]
    if t.dim() != 3 or t.shape[0] != 3:
        raise ValueError(f"to_pil expects shape (3, H, W) or (1, 3, H, W), got {tuple(t.shape)}")
    values = t.detach().to("cpu", torch.float32)
    values = torch.nan_to_num(values, nan=0.0).clamp_(0.0, 1.0)
    pixels = values.mul_(255.0).round_().to(torch.uint8).permute(1, 2, 0).contiguous()
    return Image.fromarray(pixels.numpy(), "RGB")


def _long_side_dims(dims: tuple[int, int], size: int) -> tuple[int, int]:
    """(width, height) scaled so that the long side is ``size``."""
    width, height = dims
    if width >= height:
        return size, max(1, round(height * size / width))
    return max(1, round(width * size / height)), size


def resize_long_side(img: Image.Image, size: int) -> Image.Image:
    """Scale ``img`` (keeping its aspect ratio) so that its long side is ``size`` px."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive whole number of pixels, not {size!r}")
    width, height = _long_side_dims(img.size, int(size))
    return resize_to(img, width, height)


def resize_to(img: Image.Image, width: int, height: int) -> Image.Image:
    """Resize to exactly ``width`` x ``height`` with antialiasing (Lanczos filter)."""
    width, height = int(width), int(height)
    if width < 1 or height < 1:
        raise ValueError(f"cannot resize to {width}x{height}")
    if img.size == (width, height):
        return img.copy()
    # reducing_gap: a big reduction first shrinks by an integer factor with a box filter (fast), looking the same
    return img.resize((width, height), Image.LANCZOS, reducing_gap=3.0)



#: What :func:`check_output_path` accepts for each kind of output file.
OUTPUT_KINDS: dict[str, tuple[str, ...]] = {
    "image": tuple(OUTPUT_EXTENSIONS),
    "figure": (".png", ".jpg", ".jpeg", ".pdf", ".svg"),  # what matplotlib writes for viz.save_figure
    "json": (".json",),
    "npz": (".npz",),
}


def check_output_path(path, kind: str = "image", *, inputs=()) -> pathlib.Path:
    """Before a long computation, make sure a result of ``kind`` (:data:`OUTPUT_KINDS`) can be written to
    ``path`` and is none of ``inputs``, creating missing folders; else an :class:`ImageError` naming it."""
    label = os.fsdecode(path) if isinstance(path, (str, os.PathLike)) else repr(path)
    if not isinstance(path, (str, os.PathLike)):
        raise _fail(label, "image.output_type", verb="write")
    if kind not in OUTPUT_KINDS:
        raise ValueError(f"unknown kind of output {kind!r}; use one of {', '.join(OUTPUT_KINDS)}")
    p = pathlib.Path(path).expanduser()
    if str(path) == "" or p.name == "":
        raise _fail(label, "image.output_empty", verb="write")
    if p.is_dir():
        raise _fail(label, "image.output_is_dir", verb="write")

    allowed = OUTPUT_KINDS[kind]
    if p.suffix.lower() not in allowed:
        use = " | ".join(sorted(set(allowed)))
        if p.suffix:
            raise _fail(label, "image.bad_extension", verb="write", ext=p.suffix, kind=kind, allowed=use)
        raise _fail(label, "image.no_extension", verb="write", kind=kind, allowed=use)

    for source in inputs:
        if isinstance(source, (str, os.PathLike)) and _same_file(p, pathlib.Path(source).expanduser()):
            raise _fail(label, "image.output_is_input", verb="write", input=os.fsdecode(source))

    parent = p.parent
    existing = parent  # the deepest part of the parent path that exists must be a folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise _fail(label, "image.parent_is_file", verb="write", parent=existing)
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _fail(label, "image.cannot_mkdir", verb="write", parent=parent, detail=err.strerror or str(err)) from None

    if p.exists() and not p.is_file():
        raise _fail(label, "image.output_not_regular", verb="write")
    # try it (os.access is fooled by read-only file systems and root); atomic_write needs the folder writable
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as err:
        raise _fail(label, "image.folder_not_writable", verb="write", parent=parent,
                    detail=err.strerror or str(err)) from None
    if p.exists() and not os.access(p, os.W_OK):
        raise _fail(label, "image.read_only", verb="write")
    return p


def _same_file(a: pathlib.Path, b: pathlib.Path) -> bool:
    """Whether ``a`` and ``b`` name the same file (links resolved); False if either is missing."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def save_image(img_or_tensor, path) -> pathlib.Path:
    """Save a PIL image, a tensor (see :func:`to_pil`) or an array to ``path`` (the format from its extension)
    with :func:`teachkit.fileio.atomic_write`: never half a file.  Returns the path."""
    p = check_output_path(path)
    label = os.fsdecode(path)
    if isinstance(img_or_tensor, torch.Tensor):
        img = to_pil(img_or_tensor)
    elif isinstance(img_or_tensor, np.ndarray):
        img = _from_array(img_or_tensor, "<array>")
    elif isinstance(img_or_tensor, Image.Image):
        img = img_or_tensor
    else:
        raise TypeError(f"save_image expects a PIL image, a tensor or an array, not {type(img_or_tensor).__name__}")
    fmt = OUTPUT_EXTENSIONS[p.suffix.lower()]
    keeps_alpha = fmt in ("PNG", "WEBP", "TIFF")
    if img.mode not in ("RGB", "L") and not (keeps_alpha and img.mode == "RGBA"):
        img = _to_rgb(img, "<PIL image>")
    options = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    try:
        with atomic_write(p) as out:
            img.save(out, format=fmt, **options)
    except OSError:  # a full disk, no permission: the path and the reason, worded where it is shown
        raise
    except Exception as err:  # noqa: BLE001 - KeyboardInterrupt passes through (atomic_write cleans up)
        raise _fail(label, "image.save_failed", verb="write", detail=str(err)) from None
    return p
