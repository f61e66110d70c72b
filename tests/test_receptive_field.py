"""Tests for teachkit.receptive_field (fast, offline, CPU only)."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from PIL import Image
from torch import nn

from teachkit.receptive_field import (
    RF,
    crop_box,
    feature_size,
    format_layer_table,
    layer_table,
    receptive_fields,
    unit_box,
)

# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

VGG19_CONVS = [(64, 2), (128, 2), (256, 4), (512, 4), (512, 4)]


def make_vgg19(widths=None, pool=nn.MaxPool2d, stop_at=None, in_ch=3):
    """VGG19 ``features`` with VGG-paper names; ``widths`` overrides channels."""
    layers = OrderedDict()
    c_in = in_ch
    for b, (c, n) in enumerate(VGG19_CONVS, start=1):
        c = widths[b - 1] if widths is not None else c
        for i in range(1, n + 1):
            layers[f"conv{b}_{i}"] = nn.Conv2d(c_in, c, 3, stride=1, padding=1)
            layers[f"relu{b}_{i}"] = nn.ReLU(inplace=False)
            c_in = c
            if stop_at == f"relu{b}_{i}":
                return nn.Sequential(layers)
        layers[f"pool{b}"] = pool(2, 2)
        if stop_at == f"pool{b}":
            return nn.Sequential(layers)
    return nn.Sequential(layers)


def vgg_rename(features):
    """Give an unnamed VGG-style Sequential (e.g. torchvision's) VGG-paper names."""
    out = OrderedDict()
    b, i = 1, 0
    for m in features:
        if isinstance(m, nn.Conv2d):
            i += 1
            out[f"conv{b}_{i}"] = m
        elif isinstance(m, nn.ReLU):
            out[f"relu{b}_{i}"] = m
        else:
            out[f"pool{b}"] = m
            b, i = b + 1, 0
    return nn.Sequential(out)


def positive_weights_(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g, dtype=m.weight.dtype) + 0.1)
                if m.bias is not None:
                    m.bias.zero_()
    return model


def grad_support(model, layer, y, x, hw, in_ch):
    """Boolean (H, W) mask of input pixels with a non-zero gradient for unit (y, x)."""
    names = [n for n, _ in model.named_children()]
    sub = model[: names.index(layer) + 1]
    inp = (torch.rand(1, in_ch, *hw, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
           + 0.1).requires_grad_(True)
    out = sub(inp)
    out[0, :, y, x].sum().backward()
    return inp.grad[0].abs().sum(0) != 0, out.shape[-2:]


def box_mask(box, hw):
    t, l, b, r = box
    m = torch.zeros(hw, dtype=torch.bool)
    m[t:b, l:r] = True
    return m


def bbox(mask):
    rows = torch.nonzero(mask.any(1)).flatten()
    cols = torch.nonzero(mask.any(0)).flatten()
    return (int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1)


# --------------------------------------------------------------------------
# VGG19 numbers
# --------------------------------------------------------------------------

VGG19_EXPECTED = {
    # name: (size, stride)
    "relu1_1": (3, 1),
    "relu1_2": (5, 1),
    "pool1": (6, 2),
    "relu2_1": (10, 2),
    "relu3_1": (24, 4),
    "relu4_1": (68, 8),
    "relu5_1": (156, 16),
    "relu5_4": (252, 16),
    "pool5": (268, 32),
}


@pytest.fixture(scope="module")
def vgg19():
    return make_vgg19()


def test_vgg19_sizes_and_strides(vgg19):
    rfs = receptive_fields(vgg19)
    assert list(rfs) == [n for n, _ in vgg19.named_children()]  # ordered, one per child
    for name, (size, stride) in VGG19_EXPECTED.items():
        rf = rfs[name]
        assert (rf.name, rf.size, rf.stride) == (name, size, stride), name
        assert (rf.size_x, rf.stride_x, rf.offset_x) == (rf.size, rf.stride, rf.offset)
    # offsets: 3x3/pad 1 convs keep the centre, each 2x2 pool shifts it by half a jump
    assert rfs["relu1_2"].offset == 0.0
    assert rfs["pool1"].offset == 0.5
    assert rfs["relu3_1"].offset == 1.5
    assert rfs["pool5"].offset == 15.5
    # every conv grows the field by 2 jumps, every pool by 1 jump
    assert rfs["conv1_1"].size == 3 and rfs["conv5_4"].size == 252
    assert rfs["relu5_4"] == RF("relu5_4", 252, 16, 7.5, kind="relu")


def test_vgg19_avgpool_same_geometry():
    a = receptive_fields(make_vgg19(widths=[1] * 5))
    b = receptive_fields(make_vgg19(widths=[1] * 5, pool=nn.AvgPool2d))
    assert [(r.size, r.stride, r.offset) for r in a.values()] == [
        (r.size, r.stride, r.offset) for r in b.values()
    ]


def test_torchvision_vgg19_features_renamed():
    tv = pytest.importorskip("torchvision")
    with torch.device("meta"):  # no weight init: instant
        feats = tv.models.vgg19(weights=None).features
    rfs = receptive_fields(vgg_rename(feats))
    for name, (size, stride) in VGG19_EXPECTED.items():
        assert (rfs[name].size, rfs[name].stride) == (size, stride), name
    # named_children() pairs and plain module lists work too
    pairs = receptive_fields(vgg_rename(feats).named_children())
    assert pairs == rfs
    unnamed = receptive_fields(list(feats))
    assert [(r.size, r.stride) for r in unnamed.values()] == [(r.size, r.stride) for r in rfs.values()]
    assert list(unnamed)[:2] == ["0", "1"]


# --------------------------------------------------------------------------
# hand-computed network
# --------------------------------------------------------------------------


def test_hand_computed_net():
    net = nn.Sequential(OrderedDict([
        ("a", nn.Conv2d(1, 2, 5, stride=2, padding=0)),
        ("a_relu", nn.LeakyReLU()),
        ("b", nn.Conv2d(2, 2, 3, padding=1, dilation=2)),
        ("b_bn", nn.BatchNorm2d(2)),
        ("c", nn.MaxPool2d(3, stride=2, padding=1)),
        ("d", nn.Conv2d(2, 3, 2)),
        ("e", nn.Conv2d(3, 3, (3, 5), stride=(1, 2), padding=(1, 0))),
    ]))
    rfs = receptive_fields(net)
    # a: k=5 s=2 p=0 on the input (size 1, jump 1, offset 0)
    #    size 1+4*1 = 5, jump 2, offset 0 + (2-0)*1 = 2      -> unit 0 sees rows 0..4
    assert (rfs["a"].size, rfs["a"].stride, rfs["a"].offset) == (5, 2, 2.0)
    assert rfs["a_relu"] == RF("a_relu", 5, 2, 2.0, kind="relu")
    # b: k=3 d=2 -> k_eff=5, p=1
    #    size 5+4*2 = 13, jump 2, offset 2 + (2-1)*2 = 4      -> rows -2..10
    assert (rfs["b"].size, rfs["b"].stride, rfs["b"].offset) == (13, 2, 4.0)
    assert rfs["b_bn"].size == 13 and rfs["b_bn"].kind == "norm"
    # c: k=3 s=2 p=1
    #    size 13+2*2 = 17, jump 4, offset 4 + (1-1)*2 = 4     -> rows -4..12
    assert (rfs["c"].size, rfs["c"].stride, rfs["c"].offset) == (17, 4, 4.0)
    # d: k=2 s=1 p=0
    #    size 17+1*4 = 21, jump 4, offset 4 + (0.5-0)*4 = 6   -> rows -4..16
    assert (rfs["d"].size, rfs["d"].stride, rfs["d"].offset) == (21, 4, 6.0)
    assert rfs["d"].start(0) == -4 and unit_box(rfs["d"], 0, 0)[2] == 17 and rfs["d"].start(2) == 4
    # e: rows k=3 s=1 p=1: size 21+2*4 = 29, jump 4, offset 6 + (1-1)*4 = 6
    #    cols k=5 s=2 p=0: size 21+4*4 = 37, jump 8, offset 6 + (2-0)*4 = 14
    e = rfs["e"]
    assert (e.size, e.stride, e.offset) == (29, 4, 6.0)
    assert (e.size_x, e.stride_x, e.offset_x) == (37, 8, 14.0)
    assert unit_box(e, 1, 1) == (6 + 4 - 14, 14 + 8 - 18, 6 + 4 + 15, 14 + 8 + 19)


def test_int_and_tuple_params_agree():
    a = receptive_fields(nn.Sequential(nn.Conv2d(1, 1, 3, 2, 1, 2), nn.MaxPool2d(2), nn.AvgPool2d(3, 1, 1)))
    b = receptive_fields(nn.Sequential(
        nn.Conv2d(1, 1, (3, 3), (2, 2), (1, 1), (2, 2)),
        nn.MaxPool2d((2, 2), stride=(2, 2)),
        nn.AvgPool2d((3, 3), (1, 1), (1, 1)),
    ))
    assert a == b
    assert a["1"].stride == 4  # MaxPool2d(2): stride defaults to the kernel


def test_padding_layers_and_same_padding():
    rfs = receptive_fields(nn.Sequential(OrderedDict([
        ("pad", nn.ZeroPad2d((2, 1, 3, 0))),   # left 2, right 1, top 3, bottom 0
        ("same", nn.Conv2d(1, 1, 4, padding="same")),  # pads 1 before, 2 after
        ("valid", nn.Conv2d(1, 1, 3, padding="valid")),
    ])))
    assert rfs["pad"].size == 1 and rfs["pad"].offset == -3.0 and rfs["pad"].offset_x == -2.0
    assert rfs["same"].size == 4 and rfs["same"].offset == -3.0 + 0.5
    assert rfs["valid"].size == 6 and rfs["valid"].offset == -2.5 + 1


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("hw", [(160, 160), (85, 128), (37, 53), (32, 33)])
def test_feature_size_matches_forward_pass(hw):
    """Every layer's (n_H, n_W) equals the shape a real forward pass produces."""
    net = nn.Sequential(OrderedDict([
        ("pad", nn.ZeroPad2d((2, 1, 3, 0))),
        ("same", nn.Conv2d(1, 2, 4, padding="same")),
        ("dil", nn.Conv2d(2, 2, 3, stride=2, padding=2, dilation=2)),
        ("pool", nn.MaxPool2d(3, stride=2, ceil_mode=True)),
        ("avg", nn.AvgPool2d(2, stride=2, padding=1, ceil_mode=True)),
        ("valid", nn.Conv2d(2, 1, (3, 1), padding="valid")),
        ("lp", nn.LPPool2d(2, 2)),
    ]))
    x = torch.zeros(1, 1, *hw)
    for name, m in net.named_children():
        x = m(x)
        assert feature_size(net, name, hw) == tuple(x.shape[-2:]), name
    vgg = make_vgg19(widths=[2, 2, 2, 2, 2])
    x = torch.zeros(1, 3, *hw)
    for name, m in vgg.named_children():
        x = m(x)
        assert feature_size(vgg, name, hw) == tuple(x.shape[-2:]), name


def test_feature_size_errors():
    vgg = make_vgg19(widths=[2, 2, 2, 2, 2])
    assert feature_size(vgg, "relu3_1", 100) == (25, 25)  # two 2x2 poolings: 100 -> 50 -> 25
    with pytest.raises(ValueError, match="unknown layer 'relu9_9'"):
        feature_size(vgg, "relu9_9", 64)
    with pytest.raises(ValueError, match="too small"):
        feature_size(vgg, "relu5_1", 8)
    with pytest.raises(ValueError, match="at least 1x1"):
        feature_size(vgg, "relu1_1", (0, 5))


# --------------------------------------------------------------------------
# empirical check: autograd support == unit_box
# --------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_empirical_small_net():
    torch.manual_seed(0)
    net = nn.Sequential(OrderedDict([
        ("pad", nn.ZeroPad2d((2, 1, 1, 0))),
        ("c1", nn.Conv2d(2, 3, 5, stride=2)),
        ("r1", nn.ReLU()),
        ("c2", nn.Conv2d(3, 3, 3, padding=1, dilation=2)),
        ("p1", nn.AvgPool2d(3, stride=2, padding=1)),
        ("c3", nn.Conv2d(3, 2, (3, 5), stride=(1, 2), padding=(2, 0))),
        ("c4", nn.Conv2d(2, 2, 4, padding="same")),
    ])).double()
    positive_weights_(net)
    rfs = receptive_fields(net)
    hw = (41, 52)
    checked_interior = 0
    for layer in ("c1", "c2", "p1", "c3", "c4"):
        rf = rfs[layer]
        _, shape = grad_support(net, layer, 0, 0, hw, 2)
        H, W = shape
        for y in sorted({0, 1, H // 2, H - 1}):
            for x in sorted({0, 1, W // 2, W - 1}):
                support, _ = grad_support(net, layer, y, x, hw, 2)
                box = unit_box(rf, y, x)
                assert box[2] - box[0] == rf.size and box[3] - box[1] == rf.size_x
                clipped = unit_box(rf, y, x, clip_to=hw)
                # never outside the (clipped) box
                assert not (support & ~box_mask(clipped, hw)).any(), (layer, y, x)
                if box == clipped:  # unit away from the border: box is exactly the support
                    assert bbox(support) == box, (layer, y, x)
                    checked_interior += 1
    assert checked_interior >= 5


@pytest.mark.parametrize("unit", [(8, 8), (0, 0), (0, 9), (15, 15)])
def test_empirical_vgg_relu3_1(unit):
    """VGG-shaped net (few channels), input 64x64, all-positive weights."""
    y, x = unit
    hw = (64, 64)
    rf = receptive_fields(make_vgg19(widths=[1] * 5, stop_at="relu3_1"))["relu3_1"]
    assert (rf.size, rf.stride) == (24, 4)
    box = unit_box(rf, y, x, clip_to=hw)
    # Max pooling only passes gradient to the winner of each window, so the
    # gradient support of the max-pool net is a (sparse) subset of the field.
    # An average pool with identical geometry makes every pixel of the field
    # count: its support is exactly the (clipped) box.
    for pool in (nn.AvgPool2d, nn.MaxPool2d):
        net = positive_weights_(make_vgg19(widths=[4, 4, 4, 4, 4], pool=pool, stop_at="relu3_1").double())
        support, shape = grad_support(net, "relu3_1", y, x, hw, 3)
        assert tuple(shape) == (16, 16)
        if pool is nn.AvgPool2d:
            assert torch.equal(support, box_mask(box, hw))
        else:
            assert support.any() and not (support & ~box_mask(box, hw)).any()
    if unit == (8, 8):
        assert box == unit_box(rf, y, x) == (22, 22, 46, 46)  # central unit: fully inside


# --------------------------------------------------------------------------
# unit_box / RF helpers
# --------------------------------------------------------------------------


def test_unit_box_and_clip():
    rf = RF("pool1", 6, 2, 0.5)
    assert unit_box(rf, 0, 0) == (-2, -2, 4, 4)
    assert unit_box(rf, 3, 1) == (4, 0, 10, 6)
    assert unit_box(rf, 0, 0, clip_to=(8, 8)) == (0, 0, 4, 4)
    assert unit_box(rf, 3, 3, clip_to=(8, 9)) == (4, 4, 8, 9)
    # entirely outside: empty box
    t, l, b, r = unit_box(rf, 10, 0, clip_to=(8, 8))
    assert b == t and r - l == 4
    # start follows the documented convention
    assert rf.start(3) == 4 and unit_box(rf, 3, 0)[2] == 10
    assert rf.start(3) == rf.offset - (rf.size - 1) / 2 + rf.stride * 3


def test_rf_non_square_fields():
    rf = RF("x", 3, 1, 0.0, size_x=5, stride_x=2, offset_x=2.0)
    assert (rf.size, rf.size_x, rf.stride, rf.stride_x, rf.offset, rf.offset_x) == (3, 5, 1, 2, 0.0, 2.0)
    assert rf.start_x(1) == 2 - 2 + 2
    assert unit_box(rf, 1, 1) == (0, 2, 3, 7)


# --------------------------------------------------------------------------
# errors, nesting
# --------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [
    nn.Linear(4, 4), nn.AdaptiveAvgPool2d(1), nn.Upsample(scale_factor=2), nn.Flatten(),
    nn.ConvTranspose2d(1, 1, 3), nn.LayerNorm(4),
])
def test_unknown_modules_raise(bad):
    with pytest.raises(ValueError, match="unsupported module type"):
        receptive_fields(nn.Sequential(nn.Conv2d(1, 1, 3), bad))


def test_non_sequential_container_raises():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(1, 1, 3)

    with pytest.raises(ValueError, match="nn.Sequential"):
        receptive_fields(Net())


def test_nested_sequential_dotted_names():
    net = nn.Sequential(OrderedDict([
        ("block1", nn.Sequential(OrderedDict([("conv", nn.Conv2d(1, 1, 3)), ("relu", nn.ReLU())]))),
        ("pool", nn.MaxPool2d(2)),
    ]))
    rfs = receptive_fields(net)
    assert list(rfs) == ["block1.conv", "block1.relu", "pool"]
    assert rfs["pool"].size == 4


# --------------------------------------------------------------------------
# layer table
# --------------------------------------------------------------------------


def test_layer_table_rows_and_format(vgg19):
    rows = layer_table(vgg19)
    assert len(rows) == len(vgg19)
    by = {r["name"]: r for r in rows}
    assert by["conv1_1"]["kind"] == "conv" and by["relu1_1"]["kind"] == "relu"
    assert by["pool1"]["kind"] == "pool"
    assert by["relu3_1"]["channels"] == 256 and by["pool5"]["channels"] == 512
    assert (by["pool5"]["stride"], by["pool5"]["rf_size"], by["pool5"]["offset"]) == (32, 268, 15.5)
    rows2 = layer_table(vgg19, channels={"pool5": 7}, include_input=True)
    assert rows2[0]["name"] == "input" and rows2[0]["channels"] == 3 and rows2[0]["rf_size"] == 1
    assert rows2[-1]["channels"] == 7

    text = format_layer_table(rows)
    lines = text.splitlines()
    assert len(lines) == len(rows) + 2
    assert lines[0].split() == ["layer", "kind", "op", "channels", "stride", "RF", "size", "offset"]
    # fixed width: every number column ends at the same place
    end = lines[0].index("offset") + len("offset")
    assert all(len(line) == end for line in lines[2:])
    pool5 = [line for line in lines if line.startswith("pool5")][0]
    assert pool5.split()[-4:] == ["512", "32", "268", "15.5"]


def test_layer_table_non_square():
    rows = layer_table(nn.Sequential(nn.Conv2d(3, 8, (3, 5), stride=(1, 2))))
    assert rows[0]["rf_size"] == (3, 5) and rows[0]["stride"] == (1, 2)
    assert "3x5" in format_layer_table(rows)


# --------------------------------------------------------------------------
# crop_box
# --------------------------------------------------------------------------


def _gradient_image(w=10, h=8):
    img = Image.new("RGB", (w, h))
    img.putdata([(10 * x, 20 * y, 7) for y in range(h) for x in range(w)])
    return img


def test_crop_box_across_border():
    img = _gradient_image()  # 10 wide, 8 high
    out = crop_box(img, (-2, -3, 4, 3), fill=(1, 2, 3))  # top, left, bottom, right
    assert out.size == (6, 6) and out.mode == "RGB"
    for yy in range(6):
        for xx in range(6):
            iy, ix = yy - 2, xx - 3
            expect = img.getpixel((ix, iy)) if (iy >= 0 and ix >= 0) else (1, 2, 3)
            assert out.getpixel((xx, yy)) == expect, (yy, xx)
    # bottom-right border with default grey fill
    out = crop_box(img, (5, 8, 11, 14))
    assert out.size == (6, 6)
    assert out.getpixel((0, 0)) == img.getpixel((8, 5))
    assert out.getpixel((1, 2)) == img.getpixel((9, 7))
    assert out.getpixel((2, 0)) == (128, 128, 128) and out.getpixel((0, 3)) == (128, 128, 128)
    # fully outside / fully inside
    assert crop_box(img, (20, 20, 23, 24)).tobytes() == bytes([128]) * (3 * 4 * 3)
    assert crop_box(img, (1, 1, 4, 5)).tobytes() == img.crop((1, 1, 5, 4)).tobytes()


def test_crop_box_modes_and_unit_crops_same_size():
    grey = _gradient_image().convert("L")
    out = crop_box(grey, (-1, -1, 2, 2), fill=(128, 128, 128))
    assert out.mode == "L" and out.getpixel((0, 0)) == 128 and out.getpixel((1, 1)) == grey.getpixel((0, 0))
    rgba = crop_box(_gradient_image().convert("RGBA"), (-1, -1, 2, 2))
    assert rgba.getpixel((0, 0)) == (128, 128, 128, 255)
    rf = receptive_fields(make_vgg19(widths=[1] * 5, stop_at="pool1"))["pool1"]
    img = _gradient_image()
    sizes = {crop_box(img, unit_box(rf, y, x)).size for y in range(4) for x in range(5)}
    assert sizes == {(6, 6)}
    with pytest.raises(ValueError):
        crop_box(img, (3, 0, 1, 2))
