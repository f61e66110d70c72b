r"""Receptive fields of a feed-forward stack of layers, from each layer's kernel, stride, padding and dilation.

Coordinates are pixel indices (a pixel's centre).  Per axis a layer's field has a ``size`` s (input pixels),
a ``stride`` j (input pixels per unit) and an ``offset`` o, the centre of unit 0's field (negative where
padding puts it outside the image, a half-integer for even sizes): unit ``y`` covers the input rows
``o + j*y - (s-1)/2 .. o + j*y + (s-1)/2``.  A layer with kernel k, stride st, padding p (before the first
element) and dilation d, ``k_eff = d*(k-1) + 1``, maps::

    size_out = size_in + (k_eff - 1) * j_in,   j_out = j_in * st,   offset_out = offset_in + ((k_eff - 1)/2 - p) * j_in

Elementwise layers (activations, dropout, norms: their pooled statistics ignored) leave the field as it
is; padding layers only pad.  Layers that depend on the input size, mix all positions or up-sample raise.
VGG19: relu1_2 5 px / stride 1, pool1 6 / 2, relu3_1 24 / 4, relu5_4 252 / 16, pool5 268 / 32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from torch import nn

from .messages import InputError

__all__ = ["RF", "receptive_fields", "feature_size", "unit_box", "layer_table", "format_layer_table", "crop_box"]


@dataclass(frozen=True)
class RF:
    """Receptive field of one layer's units: ``size``, ``stride``, ``offset`` for rows, the ``*_x`` ones
    for columns (the same as the rows' when omitted)."""

    name: str
    size: int
    stride: int
    offset: float
    size_x: int | None = None
    stride_x: int | None = None
    offset_x: float | None = None
    kind: str = ""

    def __post_init__(self) -> None:
        for field, cast in (("size", int), ("stride", int), ("offset", float)):
            rows, cols = getattr(self, field), getattr(self, field + "_x")
            object.__setattr__(self, field, cast(rows))
            object.__setattr__(self, field + "_x", cast(rows if cols is None else cols))
        if self.size < 1 or self.size_x < 1:
            raise ValueError(f"receptive-field size must be >= 1, got {self.size}x{self.size_x}")
        if self.stride < 1 or self.stride_x < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}x{self.stride_x}")

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


# layers that keep every position where it is, by the kind the layer table shows
_ELEMENTWISE = {
    "relu": _opt("ReLU", "ReLU6", "LeakyReLU", "PReLU", "RReLU"),
    "act": _opt("ELU", "SELU", "CELU", "GELU", "SiLU", "Mish", "Sigmoid", "Tanh", "Hardtanh", "Hardswish",
                "Hardsigmoid", "Hardshrink", "Softshrink", "Softplus", "Softsign", "Tanhshrink", "Threshold",
                "LogSigmoid", "Softmax2d"),
    "norm": _opt("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "InstanceNorm2d", "GroupNorm",
                 "LocalResponseNorm", "CrossMapLRN2d"),
    "dropout": _opt("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout"),
    "identity": _opt("Identity", "ChannelShuffle"),
}
_PAD = _opt("ZeroPad2d", "ConstantPad2d", "ReflectionPad2d", "ReplicationPad2d", "CircularPad2d")
_POOLS = {nn.MaxPool2d: "maxpool", nn.AvgPool2d: "avgpool", nn.LPPool2d: "lppool"}


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


def _describe(op: str, k, s, p, d, plain_stride) -> str:
    """'conv 3x3 s2 p1 d2', naming only what differs from the plain layer."""
    text = f"{op} {k[0]}x{k[1]}"
    for tag, v, plain in (("s", s, plain_stride), ("p", p, (0, 0)), ("d", d, (1, 1))):
        if v != plain:
            text += f" {tag}{v if isinstance(v, str) else _fmt2(v)}"
    return text


def _geometry(name: str, m: nn.Module) -> _Geom:
    if isinstance(m, nn.Conv2d):
        k, s, d = (_pair(getattr(m, a), a, name) for a in ("kernel_size", "stride", "dilation"))
        end = None
        if m.padding == "valid":
            p = (0, 0)
        elif m.padding == "same":  # PyTorch pads d*(k-1) in all, the smaller half first
            p = tuple((dd * (kk - 1)) // 2 for kk, dd in zip(k, d))  # type: ignore[assignment]
            end = tuple(dd * (kk - 1) - pp for kk, dd, pp in zip(k, d, p))
        elif isinstance(m.padding, str):
            raise ValueError(f"layer {name!r}: unknown padding {m.padding!r}")
        else:
            p = _pair(m.padding, "padding", name)
        shown_p = m.padding if isinstance(m.padding, str) else p
        return _Geom("conv", k, s, p, d, _describe("conv", k, s, shown_p, d, (1, 1)), out_channels=m.out_channels,
                     padding_end=end)
    if isinstance(m, tuple(_POOLS)):
        k = _pair(m.kernel_size, "kernel_size", name)
        s = _pair(m.stride if m.stride is not None else m.kernel_size, "stride", name)
        p = _pair(getattr(m, "padding", 0), "padding", name)
        d = _pair(getattr(m, "dilation", 1), "dilation", name)
        op = next(v for cls, v in _POOLS.items() if isinstance(m, cls))
        return _Geom("pool", k, s, p, d, _describe(op, k, s, p, d, k), ceil_mode=bool(m.ceil_mode))
    if isinstance(m, _PAD):
        if isinstance(m.padding, int):
            return _Geom("pad", padding=(m.padding, m.padding), detail=type(m).__name__)
        pad = tuple(int(v) for v in m.padding)
        if len(pad) != 4:
            raise ValueError(f"layer {name!r}: expected 4 paddings, got {pad!r}")
        left, right, top, bottom = pad
        return _Geom("pad", padding=(top, left), padding_end=(bottom, right), detail=type(m).__name__)
    for kind, classes in _ELEMENTWISE.items():
        if isinstance(m, classes):
            ch = getattr(m, "num_features", None) or getattr(m, "num_channels", None)
            return _Geom(kind, detail=type(m).__name__, out_channels=ch)
    raise InputError("layer.unsupported_module", layer=name, kind=type(m).__name__)


def _named_layers(model_or_layers: Any) -> Iterator[tuple[str, nn.Module]]:
    """``(name, module)`` in forward order from an ``nn.Sequential`` (nested ones flattened with dotted
    names), a leaf module, ``(name, module)`` pairs or modules (named by position)."""
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
            raise ValueError(f"expected an nn.Sequential or an iterable of (name, module) pairs, "
                             f"got {type(model_or_layers).__name__}") from None
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
    size, jump, offset = [1, 1], [1, 1], [0.0, 0.0]
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
        yield name, mod, g, RF(name, size[0], jump[0], offset[0], size[1], jump[1], offset[1], kind=g.kind)


def receptive_fields(model_or_layers: Any) -> dict[str, RF]:
    """The :class:`RF` of every layer's output units, in forward order (see :func:`_named_layers` for the
    accepted inputs; an unknown module raises)."""
    return {name: rf for name, _m, _g, rf in _walk(model_or_layers)}


def feature_size(model_or_layers: Any, layer: str, input_size: "int | tuple[int, int]") -> tuple[int, int]:
    """``(n_H, n_W)`` of ``layer``'s feature map for an input of ``input_size`` (a side or ``(H, W)``), by
    PyTorch's rule per axis ``n_out = floor((n_in + p_before + p_after - d*(k-1) - 1) / st) + 1`` (``ceil``
    for pooling with ``ceil_mode``, where no window may start in the padding after the input)."""
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


def unit_box(rf: RF, y: int, x: int, clip_to: tuple[int, int] | None = None) -> tuple[int, int, int, int]:
    """Input box ``(top, left, bottom, right)`` (ends exclusive) seen by unit ``(y, x)``: ``rf.size`` x
    ``rf.size_x`` pixels, possibly outside the image; ``clip_to=(H, W)`` clips it (empty if all outside)."""
    top, left = rf.start(y), rf.start_x(x)
    bottom, right = top + rf.size, left + rf.size_x
    if clip_to is not None:
        h, w = (int(v) for v in clip_to)
        top = min(max(top, 0), h)
        bottom = min(max(bottom, top), h)
        left = min(max(left, 0), w)
        right = min(max(right, left), w)
    return (top, left, bottom, right)


def _collapse(a: Any, b: Any) -> Any:
    return a if a == b else (a, b)


def layer_table(model_or_layers: Any, channels: dict[str, int] | None = None,
                include_input: bool = False) -> list[dict]:
    """One row per layer: ``name``, ``kind``, ``detail`` ('conv 3x3 p1'), ``channels`` (carried from the
    last convolution; ``channels={name: n}`` overrides), ``stride``, ``rf_size``, ``offset`` (``(rows, cols)``
    where they differ); ``include_input`` adds the image as a first row."""
    channels = dict(channels or {})
    walked = list(_walk(model_or_layers))
    rows: list[dict] = []
    if include_input:
        first_conv = next((m for _n, m, _g, _r in walked if isinstance(m, nn.Conv2d)), None)
        in_ch = channels.get("input", first_conv.in_channels if first_conv is not None else None)
        rows.append(dict(name="input", kind="input", detail="image", channels=in_ch, stride=1, rf_size=1, offset=0.0))
    ch: int | None = None
    for name, _mod, g, rf in walked:
        if g.out_channels is not None:
            ch = int(g.out_channels)
        ch = int(channels[name]) if name in channels else ch
        rows.append(dict(name=name, kind=g.kind, detail=g.detail, channels=ch, stride=_collapse(rf.stride, rf.stride_x),
                         rf_size=_collapse(rf.size, rf.size_x), offset=_collapse(rf.offset, rf.offset_x)))
    return rows


def _fmt_num(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, tuple):
        return "x".join(_fmt_num(e) for e in v)
    return f"{v:g}" if isinstance(v, float) else str(v)


_COLUMNS = (  # key, header, align
    ("name", "layer", "<"), ("kind", "kind", "<"), ("detail", "op", "<"), ("channels", "channels", ">"),
    ("stride", "stride", ">"), ("rf_size", "RF size", ">"), ("offset", "offset", ">"),
)


def format_layer_table(rows: list[dict]) -> str:
    """:func:`layer_table` rows as a fixed-width text table (numbers right-aligned, ``-`` for unknown)."""
    cols = [c for c in _COLUMNS if any(c[0] in r for r in rows)] or list(_COLUMNS)
    cells = [[_fmt_num(r.get(k)) if k not in ("name", "kind", "detail") else str(r.get(k, "") or "")
              for k, _h, _a in cols] for r in rows]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, (_k, h, _a) in enumerate(cols)]

    def line(vals: list[str]) -> str:
        return "  ".join(f"{v:{a}{w}}" for v, w, (_k, _h, a) in zip(vals, widths, cols)).rstrip()

    out = [line([h for _k, h, _a in cols]), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in cells]
    return "\n".join(out)


def crop_box(img: "Image.Image", box: tuple[int, int, int, int], fill: Any = (128, 128, 128)) -> "Image.Image":
    """Crop ``box = (top, left, bottom, right)`` (ends exclusive) from ``img`` at its full size: what lies
    outside the image is the flat ``fill`` colour, so a layer's crops share one size and show the padding."""
    from PIL import Image

    top, left, bottom, right = (int(v) for v in box)
    if bottom < top or right < left:
        raise ValueError(f"invalid box {box!r}: bottom/right must not be above/left of top/left")
    if img.mode not in ("RGB", "RGBA", "L", "LA", "I", "F"):
        img = img.convert("RGBA" if "A" in img.mode or "transparency" in img.info else "RGB")
    colour = Image.new("RGBA", (1, 1), fill).convert(img.mode).getpixel((0, 0))
    out = Image.new(img.mode, (right - left, bottom - top), colour)
    out.paste(img, (-left, -top))
    return out
