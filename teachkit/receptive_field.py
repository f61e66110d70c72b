"""Receptive fields of the units of a convolutional network.

Every unit of a convolutional feature map "looks at" a square (or rectangular)
window of the input image: its *receptive field*.  This module computes that
window for every layer of a plain feed-forward stack of layers, straight from
the layers' own hyper-parameters (kernel size, stride, padding, dilation), and
offers small helpers to turn it into pixel boxes and image crops.

Conventions
-----------
Coordinates are **pixel indices**: row ``i`` of the input image is the pixel
whose centre sits at coordinate ``i`` (pixel-centre convention).  The input
image itself is treated as a layer with receptive-field size 1, stride
("jump") 1 and offset 0.

A layer's receptive field is described by three numbers per axis:

``size`` (s)
    side of the receptive field, in input pixels;
``stride`` (j)
    the jump: moving one unit along the feature map moves the receptive field
    by ``j`` input pixels;
``offset`` (o)
    the input coordinate of the *centre* of unit 0's receptive field.  It can
    be negative (zero padding puts the first windows partly outside the image)
    and is a half-integer whenever the window has an even size.

The unit at ``(y, x)`` then covers the input rows::

    [o + j*y - (s-1)/2,  o + j*y + (s-1)/2]      (inclusive)

i.e. the half-open integer range ``[start, start + s)`` with
``start = o - (s-1)/2 + j*y``.  Both ends are always integers.  Columns work
the same way with the ``*_x`` numbers.

Recurrence
----------
A layer with kernel ``k``, stride ``st``, padding ``p`` (the padding added
before the first input element) and dilation ``d`` spans ``k_eff = d*(k-1)+1``
consecutive input-layer units.  Its output unit ``u`` reads input-layer units
``st*u - p ... st*u - p + k_eff - 1``; each of those is ``j_in`` input pixels
apart, so::

    k_eff      = d*(k - 1) + 1
    size_out   = size_in + (k_eff - 1) * j_in
    j_out      = j_in * st
    offset_out = offset_in + ((k_eff - 1)/2 - p) * j_in

(The centre of output unit 0 is the centre of input-layer units
``-p ... k_eff-1-p``, that is input-layer unit ``(k_eff-1)/2 - p``.)
Shape-preserving elementwise layers (ReLU, BatchNorm, Dropout, ...) behave like
``k=1, st=1, p=0`` and leave the receptive field unchanged; explicit padding
layers (``nn.ZeroPad2d`` ...) behave like ``k=1, st=1, p=pad``.

For VGG19 (3x3 convolutions with padding 1, 2x2 max pooling with stride 2)
this gives, e.g., ``relu1_2``: 5 px / stride 1, ``pool1``: 6 / 2,
``relu3_1``: 24 / 4, ``relu5_4``: 252 / 16 and ``pool5``: 268 / 32.

Notes
-----
* The receptive field is the *theoretical* one: the set of input pixels that
  can influence the unit.  Parts of it may lie outside the image (that is
  where the network saw padding); :func:`unit_box` can clip to the image and
  :func:`crop_box` pads such parts visibly.
* Normalisation layers (BatchNorm, InstanceNorm, GroupNorm) are treated as
  per-pixel affine maps; the statistics they pool over the whole feature map
  are ignored, as is customary.
* Layers whose geometry depends on the input size (``AdaptiveAvgPool2d``),
  that mix all positions (``Linear``, ``Flatten``) or that up-sample are not
  supported and raise :class:`ValueError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from torch import nn

from .messages import InputError

__all__ = [
    "RF",
    "receptive_fields",
    "feature_size",
    "unit_box",
    "layer_table",
    "format_layer_table",
    "crop_box",
]


# --------------------------------------------------------------------------
# The result type
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class RF:
    """Receptive field of the units of one layer.

    ``size``, ``stride`` and ``offset`` describe the vertical axis (rows);
    ``size_x``, ``stride_x`` and ``offset_x`` the horizontal axis (columns).
    For the usual square kernels both axes agree, and the ``*_x`` fields are
    filled in automatically when omitted.  See the module docstring for the
    coordinate convention.
    """

    name: str
    size: int
    stride: int
    offset: float
    size_x: int | None = None
    stride_x: int | None = None
    offset_x: float | None = None
    kind: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", int(self.size))
        object.__setattr__(self, "stride", int(self.stride))
        object.__setattr__(self, "offset", float(self.offset))
        object.__setattr__(
            self, "size_x", self.size if self.size_x is None else int(self.size_x)
        )
        object.__setattr__(
            self, "stride_x", self.stride if self.stride_x is None else int(self.stride_x)
        )
        object.__setattr__(
            self, "offset_x", self.offset if self.offset_x is None else float(self.offset_x)
        )
        if self.size < 1 or self.size_x < 1:
            raise ValueError(f"receptive-field size must be >= 1, got {self.size}x{self.size_x}")
        if self.stride < 1 or self.stride_x < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}x{self.stride_x}")

    # -- edges (see the module docstring) ------------------------------------
    def start(self, y: int) -> int:
        """First input row covered by unit row ``y``: ``offset - (size-1)/2 + stride*y``."""
        return _as_int(self.offset - (self.size - 1) / 2 + self.stride * y)

    def start_x(self, x: int) -> int:
        """First input column covered by unit column ``x``."""
        return _as_int(self.offset_x - (self.size_x - 1) / 2 + self.stride_x * x)


def _as_int(v: float) -> int:
    r = round(v)
    if abs(r - v) > 1e-6:  # cannot happen with integer paddings
        raise ValueError(f"receptive-field edge {v} is not an integer pixel coordinate")
    return int(r)


# --------------------------------------------------------------------------
# Layer geometry
# --------------------------------------------------------------------------


def _pair(v: Any, what: str, name: str) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    try:
        t = tuple(int(e) for e in v)
    except TypeError:
        raise ValueError(f"layer {name!r}: cannot read {what}={v!r}") from None
    if len(t) == 1:
        return (t[0], t[0])
    if len(t) != 2:
        raise ValueError(f"layer {name!r}: expected a 2-D {what}, got {v!r}")
    return t  # type: ignore[return-value]


def _opt(*names: str) -> tuple[type, ...]:
    """The nn classes among ``names`` that this torch version has."""
    return tuple(getattr(nn, n) for n in names if hasattr(nn, n))


_RELU = _opt("ReLU", "ReLU6", "LeakyReLU", "PReLU", "RReLU")
_ACT = _opt(
    "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish", "Sigmoid", "Tanh", "Hardtanh",
    "Hardswish", "Hardsigmoid", "Hardshrink", "Softshrink", "Softplus", "Softsign",
    "Tanhshrink", "Threshold", "LogSigmoid", "Softmax2d",
)
_NORM = _opt(
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "InstanceNorm2d",
    "GroupNorm", "LocalResponseNorm", "CrossMapLRN2d",
)
_DROPOUT = _opt("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout")
_IDENTITY = _opt("Identity", "ChannelShuffle")
_PAD = _opt(
    "ZeroPad2d", "ConstantPad2d", "ReflectionPad2d", "ReplicationPad2d", "CircularPad2d"
)
_MAXPOOL = _opt("MaxPool2d")
_AVGPOOL = _opt("AvgPool2d")
_LPPOOL = _opt("LPPool2d")

@dataclass(frozen=True)
class _Geom:
    """Per-axis (rows, cols) geometry of one layer, plus a description."""

    kind: str
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)  # padding before the first element
    dilation: tuple[int, int] = (1, 1)
    detail: str = ""
    out_channels: int | None = None
    padding_end: tuple[int, int] | None = None  # padding after the last element (None: = padding)
    ceil_mode: bool = False


def _fmt2(t: tuple[int, int]) -> str:
    return str(t[0]) if t[0] == t[1] else f"{t[0]}x{t[1]}"


def _geometry(name: str, m: nn.Module) -> _Geom:
    if isinstance(m, nn.Conv2d):
        k = _pair(m.kernel_size, "kernel_size", name)
        s = _pair(m.stride, "stride", name)
        d = _pair(m.dilation, "dilation", name)
        if isinstance(m.padding, str):
            if m.padding == "valid":
                p = (0, 0)
            elif m.padding == "same":
                # PyTorch pads total d*(k-1), the smaller half first.
                p = tuple((dd * (kk - 1)) // 2 for kk, dd in zip(k, d))  # type: ignore[assignment]
                end = tuple(dd * (kk - 1) - pp for kk, dd, pp in zip(k, d, p))
            else:
                raise ValueError(f"layer {name!r}: unknown padding {m.padding!r}")
        else:
            p = _pair(m.padding, "padding", name)
        detail = f"conv {k[0]}x{k[1]}"
        if s != (1, 1):
            detail += f" s{_fmt2(s)}"
        if p != (0, 0) or isinstance(m.padding, str):
            detail += f" p{m.padding if isinstance(m.padding, str) else _fmt2(p)}"
        if d != (1, 1):
            detail += f" d{_fmt2(d)}"
        return _Geom("conv", k, s, p, d, detail, out_channels=m.out_channels,
                      padding_end=end if m.padding == "same" else None)
    if _MAXPOOL and isinstance(m, _MAXPOOL) or _AVGPOOL and isinstance(m, _AVGPOOL):
        is_max = bool(_MAXPOOL) and isinstance(m, _MAXPOOL)
        k = _pair(m.kernel_size, "kernel_size", name)
        s = _pair(m.stride if m.stride is not None else m.kernel_size, "stride", name)
        p = _pair(m.padding, "padding", name)
        d = _pair(getattr(m, "dilation", 1), "dilation", name)
        detail = f"{'max' if is_max else 'avg'}pool {k[0]}x{k[1]}"
        if s != k:
            detail += f" s{_fmt2(s)}"
        if p != (0, 0):
            detail += f" p{_fmt2(p)}"
        if d != (1, 1):
            detail += f" d{_fmt2(d)}"
        return _Geom("pool", k, s, p, d, detail, ceil_mode=bool(m.ceil_mode))
    if _LPPOOL and isinstance(m, _LPPOOL):
        k = _pair(m.kernel_size, "kernel_size", name)
        s = _pair(m.stride if m.stride is not None else m.kernel_size, "stride", name)
        return _Geom("pool", k, s, (0, 0), (1, 1), f"lppool {k[0]}x{k[1]}", ceil_mode=bool(m.ceil_mode))
    if _PAD and isinstance(m, _PAD):
        pad = m.padding
        if isinstance(pad, int):
            left = top = pad
        else:
            pad = tuple(int(v) for v in pad)
            if len(pad) != 4:
                raise ValueError(f"layer {name!r}: expected 4 paddings, got {pad!r}")
            left, right, top, bottom = pad
            return _Geom("pad", padding=(top, left), padding_end=(bottom, right), detail=type(m).__name__)
        return _Geom("pad", padding=(top, left), detail=type(m).__name__)
    if _RELU and isinstance(m, _RELU):
        return _Geom("relu", detail=type(m).__name__)
    if _ACT and isinstance(m, _ACT):
        return _Geom("act", detail=type(m).__name__)
    if _NORM and isinstance(m, _NORM):
        ch = getattr(m, "num_features", None) or getattr(m, "num_channels", None)
        return _Geom("norm", detail=type(m).__name__, out_channels=ch)
    if _DROPOUT and isinstance(m, _DROPOUT):
        return _Geom("dropout", detail=type(m).__name__)
    if _IDENTITY and isinstance(m, _IDENTITY):
        return _Geom("identity", detail=type(m).__name__)
    raise InputError("layer.unsupported_module", layer=name, kind=type(m).__name__)


def _named_layers(model_or_layers: Any) -> Iterator[tuple[str, nn.Module]]:
    """Flatten the input into ``(name, module)`` pairs in forward order.

    Accepts an ``nn.Sequential`` (children are used; nested ``nn.Sequential``
    children are flattened with dotted names), a single leaf module, an
    iterable of ``(name, module)`` pairs (e.g. ``model.named_children()``) or
    an iterable of modules (named by their position).
    """
    if isinstance(model_or_layers, nn.Module):
        children = list(model_or_layers.named_children())
        if not children:
            yield type(model_or_layers).__name__.lower(), model_or_layers
            return
        if not isinstance(model_or_layers, nn.Sequential):
            raise InputError("layer.not_sequential", kind=type(model_or_layers).__name__)
        items: Iterable[Any] = children
    else:
        try:
            items = list(model_or_layers)
        except TypeError:
            raise ValueError(
                f"expected an nn.Sequential or an iterable of (name, module) pairs, "
                f"got {type(model_or_layers).__name__}"
            ) from None
    for i, item in enumerate(items):
        if isinstance(item, nn.Module):
            name, mod = str(i), item
        else:
            try:
                name, mod = item
            except (TypeError, ValueError):
                raise ValueError(f"item {i}: expected a (name, module) pair, got {item!r}") from None
            if not isinstance(mod, nn.Module):
                raise ValueError(f"item {name!r}: expected an nn.Module, got {type(mod).__name__}")
            name = str(name)
        if isinstance(mod, nn.Sequential):
            for sub, m in _named_layers(mod):
                yield f"{name}.{sub}", m
        else:
            yield name, mod


def _walk(model_or_layers: Any) -> Iterator[tuple[str, nn.Module, _Geom, RF]]:
    size = [1, 1]
    jump = [1, 1]
    offset = [0.0, 0.0]
    seen: set[str] = set()
    for name, mod in _named_layers(model_or_layers):
        if name in seen:
            raise ValueError(f"duplicate layer name {name!r}")
        seen.add(name)
        g = _geometry(name, mod)
        for a in (0, 1):
            k, s, p, d = g.kernel[a], g.stride[a], g.padding[a], g.dilation[a]
            if k < 1 or s < 1 or d < 1:
                raise ValueError(f"layer {name!r}: kernel/stride/dilation must be >= 1")
            k_eff = d * (k - 1) + 1
            offset[a] = offset[a] + ((k_eff - 1) / 2 - p) * jump[a]
            size[a] = size[a] + (k_eff - 1) * jump[a]
            jump[a] = jump[a] * s
        rf = RF(name, size[0], jump[0], offset[0], size[1], jump[1], offset[1], kind=g.kind)
        yield name, mod, g, rf


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def receptive_fields(model_or_layers: Any) -> dict[str, RF]:
    """Receptive field of every layer, in forward order.

    ``model_or_layers`` is an ``nn.Sequential`` (nested ``nn.Sequential``
    children are flattened with dotted names, e.g. ``"block1.conv"``), or an
    iterable of ``(name, module)`` pairs.  The result maps each layer name to
    the :class:`RF` of that layer's *output* units.

    Raises :class:`ValueError` for modules whose effect on the spatial
    geometry is unknown.
    """
    return {name: rf for name, _m, _g, rf in _walk(model_or_layers)}


def feature_size(model_or_layers: Any, layer: str, input_size: "int | tuple[int, int]") -> tuple[int, int]:
    """``(n_H, n_W)`` of ``layer``'s feature map for an input of ``input_size`` pixels.

    ``input_size`` is the side of a square or ``(height, width)``.  Walks the layers up to
    ``layer`` with PyTorch's own output-size rule per axis::

        n_out = floor((n_in + p_before + p_after - d*(k-1) - 1) / st) + 1

    (``ceil`` for pooling layers with ``ceil_mode=True``, where a window may not start in the
    padding after the input).  For VGG (3x3 convolutions with padding 1, 2x2 pooling) every
    pooling halves the size, rounding down.  Raises :class:`ValueError` for an unknown
    ``layer`` or an input too small to reach it.
    """
    if isinstance(input_size, (tuple, list)):
        if len(input_size) != 2:
            raise InputError("layer.input_size", value=repr(input_size))
        hw = [int(v) for v in input_size]
    else:
        hw = [int(input_size)] * 2
    if min(hw) < 1:
        raise InputError("layer.input_size", value=repr(input_size))
    names = []
    for name, _mod, g, _rf in _walk(model_or_layers):
        names.append(name)
        end = g.padding_end if g.padding_end is not None else g.padding
        for a in (0, 1):
            k_eff = g.dilation[a] * (g.kernel[a] - 1) + 1
            span = hw[a] + g.padding[a] + end[a] - k_eff
            if span < 0:
                raise InputError("layer.input_too_small", size=repr(input_size), layer=name)
            n = (-(-span // g.stride[a]) if g.ceil_mode else span // g.stride[a]) + 1
            if g.ceil_mode and (n - 1) * g.stride[a] >= hw[a] + g.padding[a]:
                n -= 1  # the last window would start in the padding after the input
            hw[a] = n
        if name == layer:
            return (hw[0], hw[1])
    raise InputError("layer.unknown_in_model", layer=layer, valid=", ".join(names))


def unit_box(
    rf: RF, y: int, x: int, clip_to: tuple[int, int] | None = None
) -> tuple[int, int, int, int]:
    """Input box ``(top, left, bottom, right)`` seen by unit ``(y, x)``.

    ``bottom`` and ``right`` are exclusive, so the box is exactly
    ``rf.size`` x ``rf.size_x`` pixels: rows ``top .. bottom-1`` =
    ``offset + stride*y - (size-1)/2 .. offset + stride*y + (size-1)/2``.
    It may extend outside the image (negative ``top`` ...).  With
    ``clip_to=(H, W)`` it is clipped to the image ``[0, H) x [0, W)``; a box
    entirely outside the image becomes empty (``top == bottom`` or
    ``left == right``).
    """
    top = rf.start(y)
    left = rf.start_x(x)
    bottom = top + rf.size
    right = left + rf.size_x
    if clip_to is not None:
        h, w = (int(v) for v in clip_to)
        top = min(max(top, 0), h)
        bottom = min(max(bottom, top), h)
        left = min(max(left, 0), w)
        right = min(max(right, left), w)
    return (top, left, bottom, right)


def _collapse(a: Any, b: Any) -> Any:
    return a if a == b else (a, b)


def layer_table(
    model_or_layers: Any,
    channels: dict[str, int] | None = None,
    include_input: bool = False,
) -> list[dict]:
    """One row per layer, for printing (see :func:`format_layer_table`).

    Each row is a dict with keys

    ``name``      layer name;
    ``kind``      ``'conv'``, ``'relu'``, ``'pool'``, ``'act'``, ``'norm'``,
                  ``'dropout'``, ``'identity'`` or ``'pad'``;
    ``detail``    short description, e.g. ``'conv 3x3 p1'``, ``'maxpool 2x2'``;
    ``channels``  number of output channels (from ``Conv2d.out_channels``
                  and carried through the other layers; ``None`` if unknown);
                  ``channels={name: n}`` overrides/supplies values;
    ``stride``    effective stride in input pixels;
    ``rf_size``   receptive-field side in input pixels;
    ``offset``    input coordinate of the centre of unit (0, 0)'s field.

    For non-square geometry ``stride``, ``rf_size`` and ``offset`` are
    ``(rows, cols)`` tuples.  With ``include_input=True`` a first row named
    ``'input'`` (size 1, stride 1, offset 0) is added.
    """
    channels = dict(channels or {})
    walked = list(_walk(model_or_layers))
    rows: list[dict] = []
    ch: int | None = None
    first_conv = next((m for _n, m, _g, _r in walked if isinstance(m, nn.Conv2d)), None)
    if include_input:
        in_ch = channels.get("input", first_conv.in_channels if first_conv is not None else None)
        rows.append(
            dict(name="input", kind="input", detail="image", channels=in_ch,
                 stride=1, rf_size=1, offset=0.0)
        )
    for name, _mod, g, rf in walked:
        if g.out_channels is not None:
            ch = int(g.out_channels)
        if name in channels:
            ch = int(channels[name])
        rows.append(
            dict(
                name=name,
                kind=g.kind,
                detail=g.detail,
                channels=ch,
                stride=_collapse(rf.stride, rf.stride_x),
                rf_size=_collapse(rf.size, rf.size_x),
                offset=_collapse(rf.offset, rf.offset_x),
            )
        )
    return rows


def _fmt_num(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, tuple):
        return "x".join(_fmt_num(e) for e in v)
    if isinstance(v, float):
        if v == int(v):
            return str(int(v))
        return f"{v:g}"
    return str(v)


_COLUMNS = (
    # key, header, align
    ("name", "layer", "<"),
    ("kind", "kind", "<"),
    ("detail", "op", "<"),
    ("channels", "channels", ">"),
    ("stride", "stride", ">"),
    ("rf_size", "RF size", ">"),
    ("offset", "offset", ">"),
)


def format_layer_table(rows: list[dict]) -> str:
    """Render :func:`layer_table` rows as a fixed-width text table.

    Columns: layer, kind, op, channels, stride, RF size, offset (numbers
    right-aligned; missing values shown as ``-``; non-square values as
    ``rows x cols``).  Columns whose key no row has are left out.
    """
    cols = [c for c in _COLUMNS if any(c[0] in r for r in rows)] or list(_COLUMNS)
    cells = [[_fmt_num(r.get(k)) if k not in ("name", "kind", "detail") else str(r.get(k, "") or "")
              for k, _h, _a in cols] for r in rows]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, (_k, h, _a) in enumerate(cols)]

    def line(vals: list[str]) -> str:
        return "  ".join(f"{v:{a}{w}}" for v, w, (_k, _h, a) in zip(vals, widths, cols)).rstrip()

    out = [line([h for _k, h, _a in cols]), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in cells]
    return "\n".join(out)


def _fill_for_mode(mode: str, fill: Any) -> Any:
    if isinstance(fill, str):
        return fill  # a PIL colour name such as "gray"
    if isinstance(fill, (int, float)):
        fill = (fill, fill, fill)
    fill = tuple(fill)
    if len(fill) == 1:
        fill = fill * 3
    rgb = tuple(int(v) for v in fill[:3])
    alpha = int(fill[3]) if len(fill) > 3 else 255
    grey = round(0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])
    if mode == "RGB":
        return rgb
    if mode == "RGBA":
        return rgb + (alpha,)
    if mode in ("L", "I", "I;16"):
        return grey
    if mode == "F":
        return float(grey)
    if mode == "LA":
        return (grey, alpha)
    if mode == "1":
        return 255 if grey >= 128 else 0
    return fill


def crop_box(img: "Image.Image", box: tuple[int, int, int, int], fill: Any = (128, 128, 128)) -> "Image.Image":
    """Crop ``box = (top, left, bottom, right)`` (bottom/right exclusive) from ``img``.

    The result is always ``(right-left) x (bottom-top)`` pixels: the part of
    the box outside the image is filled with the flat ``fill`` colour (not
    stretched nor clamped), so every crop of one layer's units has the same
    size and the padding the network saw stays visible.  Pixels inside the
    image are copied unchanged.  Palette and other uncommon modes are
    converted to RGB first.
    """
    from PIL import Image

    top, left, bottom, right = (int(v) for v in box)
    if bottom < top or right < left:
        raise ValueError(f"invalid box {box!r}: bottom/right must not be above/left of top/left")
    if img.mode not in ("RGB", "RGBA", "L", "LA", "I", "F", "1", "I;16"):
        img = img.convert("RGBA" if "A" in img.mode or "transparency" in img.info else "RGB")
    out = Image.new(img.mode, (right - left, bottom - top), _fill_for_mode(img.mode, fill))
    w, h = img.size
    it, il = max(top, 0), max(left, 0)
    ib, ir = min(bottom, h), min(right, w)
    if ib > it and ir > il:
        out.paste(img.crop((il, it, ir, ib)), (il - left, it - top))
    return out
