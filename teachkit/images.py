"""Images in and out of teachkit: loading, converting, saving, and sample pictures.

Everything that touches an image file goes through this module, so the rest of
teachkit can assume one simple thing: *an image is an RGB ``PIL.Image``*, or, on
the network side, a ``(1, 3, H, W)`` float tensor with values in ``[0, 1]``.

Loading
    :func:`load_image` accepts a path, raw bytes, an open file, a PIL image, a
    numpy array or a torch tensor.  Whatever comes in, an 8-bit RGB image comes
    out: the EXIF orientation of phone photos is applied, grayscale, 16-bit,
    palette, CMYK and transparent images are converted (transparent parts become
    white), and an optional ``size`` scales the long side.

    Anything wrong with the input (a missing file, a text file called
    ``.png``, a half-downloaded JPEG, a 100-megapixel scan, a 8x8 icon ...)
    raises a single kind of error, :class:`ImageError`, whose message names
    the file and says what is wrong, e.g.::

        cannot read 'photo.jpg': file is truncated or corrupt

Converting
    :func:`to_tensor` and :func:`to_pil` move between PIL images and tensors;
    :func:`resize_long_side` and :func:`resize_to` resize with antialiasing.

Saving
    :func:`check_output_path` tells you *before* a long computation whether the
    result can be written; :func:`save_image` writes a PIL image or a tensor.

Samples
    Content photos come from the files that ship inside scikit-image (nothing
    is downloaded).  Style images are painted by the functions at the end of
    this module with a few lines of numpy each -- read them, they are small.
    See :func:`list_samples`, :func:`sample_content`, :func:`sample_style` and
    :func:`resolve_image` (which turns a sample name *or* a path into an image).
"""

from __future__ import annotations

import functools
import io
import os
import pathlib
import tempfile
import warnings

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

__all__ = [
    "ImageError",
    "MAX_PIXELS",
    "MIN_SIDE",
    "OUTPUT_EXTENSIONS",
    "load_image",
    "to_tensor",
    "to_pil",
    "resize_long_side",
    "resize_to",
    "check_output_path",
    "save_image",
    "CONTENT_SAMPLES",
    "STYLE_SAMPLES",
    "DEFAULT_CONTENT",
    "DEFAULT_STYLE",
    "sample_content",
    "sample_style",
    "sample_image",
    "list_samples",
    "resolve_image",
]

#: Default limit on the number of pixels of an input image.  It is checked from
#: the file header, before any pixel is decoded, so it also guards against
#: "decompression bombs" (tiny files that claim to be enormous images).
MAX_PIXELS = 40_000_000

#: Default smallest allowed short side.  A CNN such as VGG halves the image
#: several times; below this there is nothing left to look at.
MIN_SIDE = 16

#: File extensions that :func:`save_image` can write, and the PIL format of each.
OUTPUT_EXTENSIONS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}


# ---------------------------------------------------------------------------
# The one error type
# ---------------------------------------------------------------------------


class ImageError(ValueError):
    """One readable message naming the file and the problem.

    ``str(err)`` reads like ``cannot read 'photo.jpg': file is truncated or
    corrupt``.  The parts are also available as ``err.source`` (the file name,
    or ``'<bytes>'``, ``'<PIL image>'``, ``'<array>'``, ...) and
    ``err.problem``.  It is a ``ValueError``, so ``except ValueError`` catches
    it too.
    """

    def __init__(self, message: str, source: str | None = None, problem: str | None = None):
        super().__init__(message)
        self.source = source
        self.problem = problem


def _fail(source: str, problem: str, verb: str = "read") -> ImageError:
    """Build (not raise) an ImageError with the standard wording."""
    return ImageError(f"cannot {verb} '{source}': {problem}", source=source, problem=problem)


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


def load_image(
    source,
    *,
    size: int | None = None,
    name: str | None = None,
    max_pixels: int | None = MAX_PIXELS,
    min_side: int | None = MIN_SIDE,
) -> Image.Image:
    """Load an image from almost anything and return it as an 8-bit RGB PIL image.

    Parameters
    ----------
    source
        A path (``str`` or ``pathlib.Path``), ``bytes``/``bytearray``, an open
        binary file (anything with ``.read()``), a ``PIL.Image``, a numpy array
        (``HxW``, ``HxWx1``, ``HxWx3`` or ``HxWx4``; ``uint8``, ``uint16``,
        ``bool`` or float in ``[0, 1]``) or a torch tensor (``(3, H, W)`` or
        ``(1, 3, H, W)``, float in ``[0, 1]``).
    size
        If given, scale the image so that its *long* side is ``size`` pixels
        (the aspect ratio is kept).  ``None`` keeps the original size.
    name
        What to call the source in error messages (default: the path, or
        ``'<bytes>'``, ``'<PIL image>'``, ``'<array>'``, ...).
    max_pixels
        Refuse images with more pixels than this (``None``: no limit).
    min_side
        Refuse images whose short side is smaller than this (``None``: no limit).

    Raises
    ------
    ImageError
        For every problem with the input; the message names the source.
    """
    label = name if name is not None else _describe(source)
    # Check the arguments first: no point reading a file we will refuse anyway.
    _check_size_argument(size, min_side, label)

    if isinstance(source, (str, os.PathLike)):
        img = _load_path(source, label, size, max_pixels, min_side)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise _fail(label, "file is empty (0 bytes)")
        img = _decode(io.BytesIO(data), label, size, max_pixels, min_side)
    elif hasattr(source, "read") and not isinstance(source, Image.Image):
        img = _load_file_object(source, label, size, max_pixels, min_side)
    elif isinstance(source, Image.Image):
        img = _from_pil(source, label, max_pixels, min_side)
    elif isinstance(source, np.ndarray):
        img = _from_array(source, label)
        _check_dimensions(img.size, label, max_pixels, min_side)
    elif isinstance(source, torch.Tensor):
        img = _from_tensor(source, label)
        _check_dimensions(img.size, label, max_pixels, min_side)
    else:
        raise _fail(
            label,
            f"don't know how to read a {type(source).__name__}; give a path, bytes, "
            "a file object, a PIL image, a numpy array or a torch tensor",
        )

    if size is not None:
        _check_resized(img.size, size, label, max_pixels, min_side)
        img = resize_long_side(img, size)
    return img


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
        raise _fail(label, f"size must be a whole number of pixels, not {size!r}", verb="use")
    if size < max(1, min_side or 0):
        raise _fail(
            label,
            f"size={size} is too small for the network: at least {max(1, min_side or 0)} px",
            verb="use",
        )


def _check_dimensions(dims: tuple[int, int], label: str, max_pixels, min_side) -> None:
    """Refuse zero-size, too-big and too-small images (from the header size)."""
    width, height = dims
    if width <= 0 or height <= 0:
        raise _fail(label, f"image has zero size ({width}x{height})")
    if max_pixels is not None and width * height > max_pixels:
        raise _fail(
            label,
            f"image is too large: {width}x{height} = {width * height:,} pixels, "
            f"the limit is {max_pixels:,} (max_pixels)",
        )
    if min_side is not None and min(width, height) < min_side:
        raise _fail(
            label,
            f"image is {width}x{height}, too small for the network: at least {min_side} px "
            "on the short side",
        )


def _check_resized(dims: tuple[int, int], size: int, label: str, max_pixels, min_side) -> None:
    """Check the size the image will have once its long side is scaled to ``size``.

    Scaling up can make it far too big; a long, thin strip can become too thin.
    """
    width, height = _long_side_dims(dims, size)
    if max_pixels is not None and width * height > max_pixels:
        raise _fail(
            label,
            f"size={size} would make the image {width}x{height} = {width * height:,} "
            f"pixels, the limit is {max_pixels:,} (max_pixels)",
            verb="use",
        )
    if min_side is not None and min(width, height) < min_side:
        raise _fail(
            label,
            f"resized to long side {size} the image would be {width}x{height}, too small "
            f"for the network: at least {min_side} px on the short side (use a larger size)",
            verb="use",
        )


def _load_path(path, label: str, size, max_pixels, min_side) -> Image.Image:
    if os.fspath(path) in ("", b""):
        raise _fail(label, "no file name given")
    path = pathlib.Path(os.fsdecode(path)).expanduser()
    if path.is_dir():
        raise _fail(label, "it is a directory, not an image file")
    try:
        file = open(path, "rb")
    except FileNotFoundError:
        raise _fail(label, "no such file") from None
    except IsADirectoryError:
        raise _fail(label, "it is a directory, not an image file") from None
    except PermissionError:
        raise _fail(label, "permission denied") from None
    except OSError as err:
        raise _fail(label, err.strerror or str(err)) from None
    with file:
        try:
            empty = os.fstat(file.fileno()).st_size == 0
        except OSError:
            empty = False
        if empty:
            raise _fail(label, "file is empty (0 bytes)")
        return _decode(file, label, size, max_pixels, min_side)


def _load_file_object(file, label: str, size, max_pixels, min_side) -> Image.Image:
    if isinstance(file, io.TextIOBase):
        raise _fail(label, "the file was opened in text mode; open it with 'rb'")
    # PIL needs to seek; some file objects (pipes, sockets, HTTP bodies) can't.
    try:
        seekable = file.seekable() if hasattr(file, "seekable") else hasattr(file, "seek")
        if not seekable:
            data = file.read()
            if isinstance(data, str):
                raise _fail(label, "file was opened in text mode; open it with 'rb'")
            file = io.BytesIO(data)
        else:
            start = file.tell()
            file.seek(0, io.SEEK_END)
            length = file.tell() - start
            file.seek(start)
            if length == 0:
                raise _fail(label, "file is empty (0 bytes)")
    except ImageError:
        raise
    except Exception as err:  # noqa: BLE001 - any failure of a foreign file object
        raise _fail(label, f"could not read the file object ({err})") from None
    return _decode(file, label, size, max_pixels, min_side)


def _decode(file, label: str, size, max_pixels, min_side) -> Image.Image:
    """Decode an image from an open binary file, with all the checks, to RGB."""
    try:
        with warnings.catch_warnings():
            # We check the pixel count ourselves, with a clearer message.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(file)
    except UnidentifiedImageError:
        raise _fail(label, "not an image file (or an image format PIL cannot read)") from None
    except Image.DecompressionBombError:
        raise _fail(label, "image is too large (its header claims a gigantic size)") from None
    except (OSError, SyntaxError, ValueError, EOFError, TypeError, MemoryError, IndexError) as err:
        raise _fail(label, f"file is truncated or corrupt ({err})") from None
    except Exception as err:  # noqa: BLE001 - plugins can raise almost anything
        raise _fail(label, f"file is corrupt ({type(err).__name__}: {err})") from None

    # The header is read; the pixels are not.  Check the size before decoding.
    _check_dimensions(img.size, label, max_pixels, min_side)

    if size is not None and img.format == "JPEG":
        # JPEG can decode at 1/2, 1/4 or 1/8 scale almost for free; ask for the
        # smallest scale that is still at least as large as the final size.
        try:
            img.draft(None, _long_side_dims(img.size, size))
        except Exception:  # noqa: BLE001 - only an optimisation
            pass

    _load_pixels(img, label)
    rgb = _to_rgb(img, label)
    if rgb is img:
        rgb = img.copy()  # detach from the open file
    return rgb


def _load_pixels(img: Image.Image, label: str) -> None:
    """Decode the pixels, refusing truncated files.

    PIL has a global switch, ``ImageFile.LOAD_TRUNCATED_IMAGES``, which makes it
    silently fill a truncated file with grey.  We want an error instead, so we
    turn it off while loading (and restore whatever it was).
    """
    saved = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.load()
    except Image.DecompressionBombError:
        raise _fail(label, "image is too large") from None
    except MemoryError:
        raise _fail(label, "not enough memory to decode the image") from None
    except (OSError, SyntaxError, ValueError, EOFError, TypeError, IndexError, KeyError) as err:
        raise _fail(label, f"file is truncated or corrupt ({err})") from None
    except Exception as err:  # noqa: BLE001 - plugins can raise almost anything
        raise _fail(label, f"file is corrupt ({type(err).__name__}: {err})") from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved


def _from_pil(img: Image.Image, label: str, max_pixels, min_side) -> Image.Image:
    _check_dimensions(img.size, label, max_pixels, min_side)
    _load_pixels(img, label)  # a lazily opened image may still be unread
    return _to_rgb(img, label)


def _to_rgb(img: Image.Image, label: str) -> Image.Image:
    """Apply the EXIF orientation and convert any PIL mode to 8-bit RGB.

    Returns ``img`` itself only if nothing had to change.
    """
    try:
        rotated = ImageOps.exif_transpose(img)
        if rotated is not None:
            img = rotated
    except Exception:  # noqa: BLE001 - a broken EXIF block should not stop us
        pass

    try:
        mode = img.mode
        if mode == "RGB" and "transparency" not in img.info:
            return img
        if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
            # 16-bit grayscale: 0..65535 must become 0..255 (PIL's own convert
            # would just clip everything above 255 to white).
            values = np.asarray(img).astype(np.float64)
            return _gray_to_rgb(np.clip(values, 0, 65535) * (255.0 / 65535.0))
        if mode == "F":
            # Floating point grayscale: [0, 1] if it fits, otherwise 0..255.
            values = np.nan_to_num(np.asarray(img, dtype=np.float64))
            scale = 255.0 if values.size and values.max() <= 1.0 else 1.0
            return _gray_to_rgb(np.clip(values * scale, 0, 255))
        has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
        if has_alpha:
            # Paint the image over a white background, so that transparent
            # pixels become white rather than whatever colour they hide.
            rgba = img.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, rgba).convert("RGB")
        # L, 1, P, CMYK, YCbCr, LAB, HSV, RGBX ...: PIL knows how.
        return img.convert("RGB")
    except Exception as err:  # noqa: BLE001
        raise _fail(label, f"cannot convert colour mode {img.mode!r} to RGB ({err})") from None


def _gray_to_rgb(values: np.ndarray) -> Image.Image:
    """A float array with values 0..255 -> an RGB image (grey)."""
    gray = np.rint(values).astype(np.uint8)
    return Image.fromarray(np.repeat(gray[:, :, None], 3, axis=2), "RGB")


def _from_array(array: np.ndarray, label: str) -> Image.Image:
    """A numpy image (HxW, HxWx1/3/4) -> RGB PIL image."""
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[2] not in (3, 4):
        raise _fail(
            label,
            f"array shape {a.shape} looks channels-first; use array.transpose(1, 2, 0) "
            "to get height x width x channels",
        )
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))):
        raise _fail(label, f"array shape {a.shape} is not HxW, HxWx1, HxWx3 or HxWx4")
    if a.size == 0:
        raise _fail(label, f"image has zero size (array shape {a.shape})")

    if a.dtype == np.uint8:
        pixels = a
    elif a.dtype == np.bool_:
        pixels = a.astype(np.uint8) * 255
    elif a.dtype == np.uint16:
        pixels = np.rint(a.astype(np.float64) * (255.0 / 65535.0)).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        if not np.all(np.isfinite(a)):
            raise _fail(label, "array contains NaN or infinite values")
        low, high = float(a.min()), float(a.max())
        if low < -1e-3 or high > 1 + 1e-3:
            hint = " (divide by 255?)" if high <= 255 and low >= 0 else ""
            raise _fail(label, f"float values must be in [0, 1], got {low:g}..{high:g}{hint}")
        pixels = np.rint(np.clip(a, 0, 1) * 255).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.integer):
        # e.g. int64 from np.array([...]): fine if it really holds 0..255.
        low, high = int(a.min()), int(a.max())
        if low < 0 or high > 255:
            raise _fail(
                label,
                f"integer values must be in 0..255 (got {low}..{high}); use uint8, "
                "uint16 or floats in [0, 1]",
            )
        pixels = a.astype(np.uint8)
    else:
        raise _fail(label, f"unsupported array dtype {a.dtype}")

    if pixels.ndim == 2:
        return Image.fromarray(np.ascontiguousarray(pixels), "L").convert("RGB")
    if pixels.shape[2] == 4:
        return _to_rgb(Image.fromarray(np.ascontiguousarray(pixels), "RGBA"), label)
    return Image.fromarray(np.ascontiguousarray(pixels), "RGB")


def _from_tensor(t: torch.Tensor, label: str) -> Image.Image:
    """A (3,H,W) or (1,3,H,W) float tensor in [0, 1] -> RGB PIL image."""
    shape = tuple(t.shape)
    if t.dim() == 4 and shape[0] == 1:
        t = t[0]
    if t.dim() != 3 or t.shape[0] not in (1, 3):
        raise _fail(label, f"tensor shape {shape} is not (3, H, W) or (1, 3, H, W)")
    if t.shape[1] == 0 or t.shape[2] == 0:
        raise _fail(label, f"image has zero size (tensor shape {shape})")
    if t.is_complex():
        raise _fail(label, "complex tensors are not images")
    values = t.detach().to("cpu", torch.float32)
    if not torch.isfinite(values).all():
        raise _fail(label, "tensor contains NaN or infinite values")
    if not t.is_floating_point():
        raise _fail(label, f"tensor must be float in [0, 1], not {t.dtype}")
    low, high = float(values.min()), float(values.max())
    if low < -1e-3 or high > 1 + 1e-3:
        raise _fail(label, f"tensor values must be in [0, 1], got {low:g}..{high:g}")
    if values.shape[0] == 1:
        values = values.expand(3, -1, -1)
    return to_pil(values)


# ---------------------------------------------------------------------------
# Converting and resizing
# ---------------------------------------------------------------------------


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
    """``(1, 3, H, W)`` or ``(3, H, W)`` tensor -> RGB PIL image.

    Values are clamped to ``[0, 1]`` and rounded to the nearest of 256 levels.
    """
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
    # reducing_gap: for big reductions, first shrink by an integer factor with a
    # box filter (fast), then finish with Lanczos; the result looks the same.
    return img.resize((width, height), Image.LANCZOS, reducing_gap=3.0)


# ---------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------


def check_output_path(path) -> pathlib.Path:
    """Make sure an image can be written to ``path``; returns it as a ``Path``.

    Call this *before* a long computation, so a typo in the output name fails
    in a second, not after ten minutes.  Missing parent folders are created.
    Raises :class:`ImageError` naming the path if the extension is not one of
    ``.png .jpg .jpeg .webp .bmp .tif .tiff``, if the path is a directory, if
    its parent can't be a directory, or if there is no permission to write.
    """
    label = os.fsdecode(path) if isinstance(path, (str, os.PathLike)) else repr(path)
    if not isinstance(path, (str, os.PathLike)):
        raise _fail(label, "the output path must be a string or a pathlib.Path", verb="write")
    p = pathlib.Path(path).expanduser()
    if str(path) == "" or p.name == "":
        raise _fail(label, "the output path is empty", verb="write")
    if p.is_dir():
        raise _fail(label, "it is an existing directory; give a file name", verb="write")

    extension = p.suffix.lower()
    allowed = " ".join(sorted(set(OUTPUT_EXTENSIONS)))
    if extension not in OUTPUT_EXTENSIONS:
        what = f"unsupported extension '{p.suffix}'" if p.suffix else "no file extension"
        raise _fail(label, f"{what}; use one of {allowed}", verb="write")

    parent = p.parent
    # Find the deepest part of the parent path that exists: it must be a folder.
    existing = parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise _fail(label, f"'{existing}' is a file, not a directory", verb="write")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _fail(
            label, f"cannot create the folder '{parent}' ({err.strerror or err})", verb="write"
        ) from None

    if p.exists():
        if not p.is_file():
            raise _fail(label, "it exists and is not a regular file", verb="write")
        if not os.access(p, os.W_OK):
            raise _fail(label, "permission denied (the file is read-only)", verb="write")
    else:
        # The honest test of "can I write here?" is to try (os.access is fooled
        # by read-only file systems, and root passes every os.access check).
        try:
            with tempfile.TemporaryFile(dir=parent):
                pass
        except OSError as err:
            raise _fail(
                label, f"cannot write in the folder '{parent}' ({err.strerror or err})",
                verb="write",
            ) from None
    return p


def save_image(img_or_tensor, path) -> pathlib.Path:
    """Save a PIL image, a tensor (see :func:`to_pil`) or a numpy array to ``path``.

    The format follows the extension.  The file is written to a temporary name
    first and then renamed, so a failed save never leaves half a file behind.
    Returns the path as a ``pathlib.Path``.
    """
    p = check_output_path(path)
    label = os.fsdecode(path)
    if isinstance(img_or_tensor, torch.Tensor):
        img = to_pil(img_or_tensor)
    elif isinstance(img_or_tensor, np.ndarray):
        img = _from_array(img_or_tensor, "<array>")
    elif isinstance(img_or_tensor, Image.Image):
        img = img_or_tensor
    else:
        raise TypeError(
            f"save_image expects a PIL image, a tensor or an array, not {type(img_or_tensor).__name__}"
        )

    fmt = OUTPUT_EXTENSIONS[p.suffix.lower()]
    keeps_alpha = fmt in ("PNG", "WEBP", "TIFF")
    if img.mode not in ("RGB", "L") and not (keeps_alpha and img.mode == "RGBA"):
        img = _to_rgb(img, "<PIL image>")
    options = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}

    fd, tmp_name = tempfile.mkstemp(dir=p.parent, prefix=".tmp-", suffix=p.suffix)
    try:
        with os.fdopen(fd, "wb") as out:
            img.save(out, format=fmt, **options)
        os.replace(tmp_name, p)
    except Exception as err:  # noqa: BLE001
        try:
            os.unlink(tmp_name)
        except OSError:
            pass
        raise _fail(label, f"saving failed ({err})", verb="write") from None
    return p


# ---------------------------------------------------------------------------
# Sample images
# ---------------------------------------------------------------------------

# Photos that ship inside the scikit-image package (in skimage/data/); we read
# the files directly, so nothing is ever downloaded.
_CONTENT_FILES = {
    "chelsea": "chelsea.png",  # Chelsea the cat: fur, whiskers, strong edges
    "astronaut": "astronaut.png",  # Eileen Collins, NASA portrait
    "coffee": "coffee.png",  # a cup of coffee on a saucer
    "rocket": "rocket.jpg",  # a rocket on the launch pad
    "motorcycle": "motorcycle_left.png",  # a motorcycle (stereo pair, left)
    "camera": "camera.png",  # the classic grayscale cameraman
}

CONTENT_SAMPLES: tuple[str, ...] = tuple(_CONTENT_FILES)
STYLE_SAMPLES: tuple[str, ...] = ("stained_glass", "swirls", "rings", "waves")
DEFAULT_CONTENT = "chelsea"
DEFAULT_STYLE = "stained_glass"


def list_samples() -> dict[str, list[str]]:
    """The names of the bundled samples: ``{'content': [...], 'style': [...]}``."""
    return {"content": list(CONTENT_SAMPLES), "style": list(STYLE_SAMPLES)}


def _sample_names() -> str:
    return (
        f"content samples: {', '.join(CONTENT_SAMPLES)}; "
        f"style samples: {', '.join(STYLE_SAMPLES)}"
    )


def _unknown_sample(name) -> ImageError:
    return _fail(str(name), f"unknown sample name; {_sample_names()}", verb="find")


def sample_content(name: str = DEFAULT_CONTENT, size: int | None = None) -> Image.Image:
    """One of the bundled photos as an RGB image; ``size`` scales the long side."""
    if name not in _CONTENT_FILES:
        raise _unknown_sample(name)
    img = _read_content_file(name).copy()  # a copy: callers may draw on it
    return resize_long_side(img, size) if size is not None else img


@functools.lru_cache(maxsize=None)
def _read_content_file(name: str) -> Image.Image:
    import skimage.data  # imported here: only the sample photos need it

    path = pathlib.Path(skimage.data.__file__).parent / _CONTENT_FILES[name]
    if not path.is_file():
        raise _fail(
            str(path),
            f"the sample photo '{name}' is missing from the installed scikit-image",
        )
    return load_image(path, name=f"sample:{name}")


def sample_style(name: str = DEFAULT_STYLE, size=512) -> Image.Image:
    """A generated style image (RGB).

    ``size`` is the side of the square (default 512), or a ``(width, height)``
    pair.  The same name and size always give exactly the same pixels.
    """
    if name not in _STYLE_PAINTERS:
        raise _unknown_sample(name)
    if size is None:
        size = 512
    if isinstance(size, (tuple, list)) and len(size) == 2:
        width, height = size
    else:
        width = height = size
    for side in (width, height):
        if isinstance(side, bool) or not isinstance(side, (int, np.integer)) or side < 1:
            raise ValueError(f"style size must be a positive int or (width, height), not {size!r}")
    return _painted_style(name, int(width), int(height)).copy()


def sample_image(name: str, size=None) -> Image.Image:
    """A content or style sample by name (style samples default to 512 px)."""
    if name in _CONTENT_FILES:
        return sample_content(name, size)
    if name in _STYLE_PAINTERS:
        return sample_style(name, size if size is not None else 512)
    raise _unknown_sample(name)


def resolve_image(spec, size: int | None = None) -> Image.Image:
    """Turn a sample name or anything :func:`load_image` accepts into an RGB image.

    ``spec`` may be a sample name (``'chelsea'``, ``'rings'``), a sample name
    with the prefix ``'sample:'`` (``'sample:rings'``), a path, or any other
    image source.  An existing file wins over a sample of the same name unless
    the ``'sample:'`` prefix is used.  For a style sample, ``size`` is the side
    of the square; otherwise it is the long side.
    """
    if isinstance(spec, str) and spec.startswith("sample:"):
        return sample_image(spec[len("sample:"):].strip(), size)
    if isinstance(spec, (str, os.PathLike)):
        path = pathlib.Path(spec).expanduser()
        if isinstance(spec, str) and spec in (CONTENT_SAMPLES + STYLE_SAMPLES):
            if not path.is_file():
                return sample_image(spec, size)
        if not path.exists():
            raise _fail(os.fsdecode(spec), f"no such file, and not a sample name ({_sample_names()})")
    return load_image(spec, size=size)


# ---------------------------------------------------------------------------
# Generated style images
#
# Each painter takes (width, height) and returns an H x W x 3 float array with
# values in [0, 1].  Positions are measured in units of the long side, so the
# same picture is drawn at every resolution.  Fixed seeds make them identical
# on every call.
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _painted_style(name: str, width: int, height: int) -> Image.Image:
    rgb = _STYLE_PAINTERS[name](width, height)
    pixels = np.rint(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def _grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Pixel-centre coordinates (x, y) in units of the long side, and one pixel's size."""
    scale = 1.0 / max(width, height)
    x = (np.arange(width, dtype=np.float32) + 0.5) * scale
    y = (np.arange(height, dtype=np.float32) + 0.5) * scale
    return x[None, :], y[:, None], scale


def _hsv_to_rgb(h, s, v) -> np.ndarray:
    """Vectorised HSV -> RGB (all in [0, 1]); returns an array with a last axis of 3."""
    h, s, v = np.broadcast_arrays(np.asarray(h, np.float32), np.asarray(s, np.float32),
                                  np.asarray(v, np.float32))
    k = np.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], axis=-1)
    return v[..., None] - (v * s)[..., None] * np.clip(np.minimum(k, 4 - k), 0, 1)


def _smooth_noise(rng: np.random.Generator, width: int, height: int, cells: int) -> np.ndarray:
    """Soft random blotches: a small random grid blown up with a smooth filter."""
    coarse = rng.random((cells, cells)).astype(np.float32)
    img = Image.fromarray(coarse, "F").resize((max(width, height),) * 2, Image.BICUBIC)
    return np.asarray(img)[:height, :width]


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _paint_stained_glass(width: int, height: int) -> np.ndarray:
    """A Voronoi mosaic: glowing pieces of coloured glass held by dark lead lines.

    The "glass pieces" are the Voronoi cells of points scattered on a jittered
    grid (one point per grid square), so the nearest point of any pixel is in
    the 3x3 neighbourhood of its grid square -- we never compare against all
    points.  The lead lines are the pixels close to the border between the
    nearest and second-nearest point.
    """
    rng = np.random.default_rng(1887)
    n = 9  # grid squares across the long side
    x, y, px = _grid(width, height)

    # One point per grid square, with a one-square border all around.
    rows = cols = n + 3
    points = (np.stack(np.meshgrid(np.arange(cols), np.arange(rows)), axis=-1) - 1
              + rng.uniform(0.2, 0.8, (rows, cols, 2))) / n  # [row, col, (x, y)]

    # Classic cathedral colours: ruby, cobalt, emerald, amber, violet, turquoise.
    hues = np.array([0.99, 0.62, 0.36, 0.11, 0.78, 0.52, 0.04, 0.66])
    hue = hues[rng.integers(0, len(hues), (rows, cols))] + rng.normal(0, 0.015, (rows, cols))
    sat = rng.uniform(0.75, 1.0, (rows, cols))
    val = rng.uniform(0.65, 1.0, (rows, cols))
    colours = _hsv_to_rgb(hue % 1.0, sat, val)

    # Number the points 0, 1, 2, ... (row by row) and keep their x and y apart.
    point_x = points[..., 0].ravel().astype(np.float32)
    point_y = points[..., 1].ravel().astype(np.float32)
    colours = colours.reshape(-1, 3)

    # Grid square of every pixel (+1 for the border), and its point's number.
    home = (np.floor(y * n).astype(np.int32) + 1) * cols + (np.floor(x * n).astype(np.int32) + 1)
    best = np.full((height, width), np.inf, np.float32)  # squared distance to nearest
    second = np.full((height, width), np.inf, np.float32)  # ... and to second nearest
    best_i = np.zeros((height, width), np.int32)  # number of the nearest point
    second_i = np.zeros((height, width), np.int32)
    for offset in (-cols - 1, -cols, -cols + 1, -1, 0, 1, cols - 1, cols, cols + 1):
        i = home + offset  # the point of a neighbouring grid square
        d = (x - point_x[i]) ** 2 + (y - point_y[i]) ** 2
        closer = d < best
        second_i = np.where(closer, best_i, np.where(d < second, i, second_i))
        second = np.where(closer, best, np.minimum(second, d))
        best_i = np.where(closer, i, best_i)
        best = np.minimum(best, d)

    # Distance from the pixel to the border between its two nearest points.
    gap = np.hypot(point_x[best_i] - point_x[second_i], point_y[best_i] - point_y[second_i])
    to_border = (second - best) / (2 * np.maximum(gap, 1e-6))

    glass = colours[best_i]
    # Glass glows brighter in the middle of each piece, and is a little uneven.
    glow = 0.7 + 0.45 * _smoothstep(0.0, 0.05, to_border)
    mottle = 0.85 + 0.3 * _smooth_noise(rng, width, height, 40)
    grain = 1.0 + 0.06 * rng.standard_normal((height, width)).astype(np.float32)
    glass = glass * (glow * mottle * grain)[..., None]

    lead_half_width = 0.0045
    lead = 1.0 - np.clip((to_border - lead_half_width) / px + 0.5, 0.0, 1.0)
    lead_colour = np.array([0.08, 0.07, 0.07], np.float32)
    return glass * (1 - lead[..., None]) + lead_colour * lead[..., None]


def _paint_swirls(width: int, height: int) -> np.ndarray:
    """Swirling brush strokes, made by line integral convolution (LIC).

    A flow is made of a few whirlpools (vortices).  LIC smears random noise
    along the flow: each pixel averages the noise met when walking a short way
    forwards and backwards along the stream, which gives streaks that follow
    the swirls like brush strokes.  Colours come in bands that also follow the
    streamlines.
    """
    rng = np.random.default_rng(1889)
    # Work at half resolution (strokes a couple of pixels wide, and 4x faster).
    w, h = max(8, (width + 1) // 2), max(8, (height + 1) // 2)
    x, y, px = _grid(w, h)

    vortices = [(*rng.uniform(0.05, 0.95, 2), rng.choice([-1.0, 1.0]) * rng.uniform(0.6, 1.2))
                for _ in range(6)]
    core = 0.03
    vx = np.full((h, w), 0.4, np.float32)  # a gentle wind to the right
    vy = np.zeros((h, w), np.float32)
    stream = 0.4 * np.broadcast_to(y, (h, w)).astype(np.float32)  # its stream function
    for cx, cy, strength in vortices:
        dx, dy = x - cx, y - cy
        r2 = dx * dx + dy * dy + core * core
        vx = vx - strength * 0.05 * dy / r2
        vy = vy + strength * 0.05 * dx / r2
        stream = stream - strength * 0.025 * np.log(r2)
    speed = np.hypot(vx, vy) + 1e-6
    ux, uy = vx / speed, vy / speed  # unit directions, in pixels per step

    noise = rng.random((h, w)).astype(np.float32)
    steps = max(4, round(0.035 / px))  # stroke half-length: 3.5% of the picture
    total = noise.copy()
    for direction in (1.0, -1.0):
        col = np.broadcast_to(np.arange(w, dtype=np.float32)[None, :], (h, w)).copy()
        row = np.broadcast_to(np.arange(h, dtype=np.float32)[:, None], (h, w)).copy()
        for _ in range(steps):
            ic = np.clip(np.rint(col), 0, w - 1).astype(np.intp)
            ir = np.clip(np.rint(row), 0, h - 1).astype(np.intp)
            col += direction * ux[ir, ic]
            row += direction * uy[ir, ic]
            ic = np.clip(np.rint(col), 0, w - 1).astype(np.intp)
            ir = np.clip(np.rint(row), 0, h - 1).astype(np.intp)
            total += noise[ir, ic]
    streaks = total / (2 * steps + 1)
    streaks = (streaks - streaks.mean()) / (streaks.std() + 1e-6)  # contrast stretch

    # A cyclic palette in the spirit of a starry night: blues, teal, gold, cream.
    palette = np.array([[0.06, 0.12, 0.42], [0.10, 0.35, 0.75], [0.15, 0.62, 0.70],
                        [0.95, 0.80, 0.20], [0.98, 0.55, 0.10], [0.55, 0.20, 0.55]], np.float32)
    t = (stream * 6.0) % 1.0 * len(palette)
    i0 = np.floor(t).astype(np.intp) % len(palette)
    frac = _smoothstep(0.6, 1.0, t - np.floor(t))[..., None]  # mostly flat bands
    colour = palette[i0] * (1 - frac) + palette[(i0 + 1) % len(palette)] * frac
    rgb = colour * np.clip(0.8 + 0.28 * streaks, 0.2, 1.4)[..., None]

    img = Image.fromarray(np.rint(np.clip(rgb, 0, 1) * 255).astype(np.uint8), "RGB")
    return np.asarray(img.resize((width, height), Image.BICUBIC), np.float32) / 255.0


def _paint_rings(width: int, height: int) -> np.ndarray:
    """Overlapping discs of concentric coloured rings, in the manner of Kandinsky.

    Discs are painted from the largest to the smallest ("painter's algorithm"):
    each new disc simply covers what is below it.
    """
    rng = np.random.default_rng(1913)
    x, y, px = _grid(width, height)
    xf = np.broadcast_to(x, (height, width))
    yf = np.broadcast_to(y, (height, width))

    # Background: wide rings around a centre outside the picture.
    d = np.hypot(xf + 0.3, yf - 1.2)
    rgb = _hsv_to_rgb(0.6 + 0.04 * np.sin(d * 40.0), 0.6, 0.25 + 0.08 * np.sin(d * 40.0))

    # One disc per square of a 4x4 grid (placed at random inside it), so that
    # the discs spread over the whole picture, plus a few small ones anywhere.
    discs = [((i + rng.uniform(0.1, 0.9)) / 4, (j + rng.uniform(0.1, 0.9)) / 4,
              rng.uniform(0.1, 0.24)) for i in range(4) for j in range(4)]
    discs += [(rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.1)) for _ in range(5)]
    for cx, cy, radius in sorted(discs, key=lambda disc: -disc[2]):
        n_rings = int(rng.integers(3, 8))
        ring_width = radius / n_rings
        base_hue = rng.random()
        ring_colours = _hsv_to_rgb(
            (base_hue + rng.choice([0.0, 0.5, 0.33, 0.16], n_rings)
             + rng.normal(0, 0.03, n_rings)) % 1.0,
            rng.uniform(0.75, 1.0, n_rings),
            rng.uniform(0.75, 1.0, n_rings),
        )
        # Only touch the pixels in the disc's bounding box.
        c0, c1 = int(max(0, (cx - radius) / px - 2)), int(min(width, (cx + radius) / px + 2))
        r0, r1 = int(max(0, (cy - radius) / px - 2)), int(min(height, (cy + radius) / px + 2))
        if c0 >= c1 or r0 >= r1:
            continue
        dist = np.hypot(xf[r0:r1, c0:c1] - cx, yf[r0:r1, c0:c1] - cy)
        ring = np.minimum((dist / ring_width).astype(np.intp), n_rings - 1)
        paint = ring_colours[ring]
        # A thin dark line between rings, and a soft shadow at the disc's edge.
        from_line = np.abs(dist / ring_width - np.rint(dist / ring_width)) * ring_width
        line = 1.0 - np.clip((from_line - 0.002) / px + 0.5, 0.0, 1.0)
        line[dist < 0.5 * ring_width] = 0.0  # no dot in the very centre
        paint = paint * (1.0 - 0.85 * line[..., None])
        cover = np.clip((radius - dist) / px + 0.5, 0.0, 1.0)[..., None]
        patch = rgb[r0:r1, c0:c1]
        rgb[r0:r1, c0:c1] = patch * (1 - cover) + paint * cover

    grain = 1.0 + 0.05 * _smooth_noise(rng, width, height, 160) - 0.025
    return rgb * grain[..., None]


def _paint_waves(width: int, height: int) -> np.ndarray:
    """Stylised sea waves: wavy bands of blue and foam, outlined like a woodcut."""
    rng = np.random.default_rng(1831)
    x, y, px = _grid(width, height)
    # Bend horizontal stripes with a sum of a few sine waves.
    phase = y * 14.0
    for _ in range(5):
        fx, fy = rng.uniform(1.0, 6.0), rng.uniform(-3.0, 3.0)
        phase = phase + rng.uniform(0.3, 0.9) * np.sin(
            2 * np.pi * (fx * x + fy * y) + rng.uniform(0, 2 * np.pi))
    band = np.floor(phase).astype(np.intp)
    within = phase - np.floor(phase)

    palette = np.array([[0.03, 0.09, 0.30], [0.07, 0.25, 0.55], [0.16, 0.45, 0.70],
                        [0.55, 0.75, 0.85], [0.95, 0.93, 0.84], [0.10, 0.35, 0.50]], np.float32)
    colour = palette[band % len(palette)]
    # Each band darkens towards its lower edge, like the shading of a wood print.
    shade = 0.65 + 0.45 * (1.0 - within)
    rgb = colour * shade[..., None]
    # Dark outline at the top of each band (the line's width is in pixels).
    slope = np.hypot(*np.gradient(phase, axis=(1, 0))) + 1e-6  # phase change per pixel
    line_px = np.minimum(within, 1.0 - within) / slope
    outline = 1.0 - np.clip(line_px - 1.0, 0.0, 1.0)
    return rgb * (1.0 - 0.85 * outline[..., None])


_STYLE_PAINTERS = {
    "stained_glass": _paint_stained_glass,
    "swirls": _paint_swirls,
    "rings": _paint_rings,
    "waves": _paint_waves,
}
