"""What each unit wants to see (teachkit.visualize): the parametrisation against formulas, the cost's
gradient against finite differences, a painted image against its unit, the CLI's bad input, prepare."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from teachkit import visualize as V
from teachkit.cli import main
from teachkit.messages import InputError


def test_a_planted_frequency_comes_back_as_that_cosine_scaled_by_one_over_f():
    """One spectrum entry in one decorrelated plane -> that plane's colour times a cosine of that
    frequency, its amplitude proportional to 1/f (before the sigmoid)."""
    h, w = 16, 20
    img = V.FourierImage(h, w, seed=0)
    m, _ = V.photo_colours()
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    amps = {}
    for ky, kx in ((1, 2), (3, 1), (2, 5), (-4, 3)):
        with torch.no_grad():
            img.params[0].zero_()
            img.params[0][0, 1, ky, kx] = 1.0  # the real part of frequency (ky, kx) in plane 1
        x = (img.compose() - img.offset)[0].detach().double()
        pattern = m[:, 1, None, None].double() * torch.cos(2 * math.pi * (ky * yy / h + kx * xx / w))
        amp = float((x * pattern).sum() / (pattern * pattern).sum())
        assert torch.allclose(x, amp * pattern, atol=1e-6) and amp > 0
        amps[(ky, kx)] = amp * math.hypot(ky / h, kx / w)
    assert max(amps.values()) == pytest.approx(min(amps.values()), rel=1e-4)


def test_the_colour_matrix_is_a_square_root_of_the_photos_covariance():
    from teachkit.datasets import get_dataset

    ds = get_dataset("sample")
    px = np.concatenate([np.asarray(ds.photo(s).resize((64, 64)), dtype=np.float64).reshape(-1, 3) / 255
                         for s in range(len(ds.sources))])
    cov = np.cov(px, rowvar=False)
    m, mean = (t.double().numpy() for t in V.photo_colours())
    mm = m @ m.T
    k = cov[0, 0] / mm[0, 0]
    assert np.allclose(mm * k, cov, rtol=1e-3, atol=1e-7)
    assert np.allclose(mean, px.mean(0), atol=1e-5)
    assert np.linalg.norm(m, axis=0).max() == pytest.approx(1.0)


def test_the_image_stays_in_range_around_the_photos_mean_colour():
    img = V.FourierImage(24, 24, seed=3)
    x = img.rgb()
    assert x.shape == (1, 3, 24, 24) and 0 < float(x.min()) and float(x.max()) < 1
    assert torch.allclose(x.mean((0, 2, 3)), V.photo_colours()[1], atol=0.02)  # a faint start


def test_jitter_without_shift_scale_or_turn_is_the_reflected_padding():
    x = torch.rand(1, 3, 16, 20)
    g = torch.Generator().manual_seed(0)
    out = V.jitter(x, g, pad=3, shift=0, scale=0.0, degrees=0.0)
    assert torch.allclose(out, F.pad(x, (3,) * 4, mode="reflect"), atol=1e-5)
    assert V.jitter(x, g).shape == (1, 3, 40, 44)


def test_the_costs_gradient_matches_finite_differences(net, one_thread):
    """J's gradient with respect to the image, against a central difference along a random direction
    (the same random transform for every evaluation; the network in float64)."""
    import copy

    net64 = copy.deepcopy(net).double()
    x = torch.rand(1, 3, 24, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 0.5 + 0.25
    d = torch.randn(x.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)

    def cost(img):
        return V.UnitCost(net64, "relu2_1", 7, seed=5)(img)[0]

    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(cost(x), x)
    h = 1e-6
    with torch.no_grad():
        numeric = (cost(x + h * d) - cost(x - h * d)) / (2 * h)
    assert float((grad * d).sum()) == pytest.approx(float(numeric), rel=1e-4)


def test_the_painted_image_excites_its_unit(net, one_thread):
    """More than the start does, more than the layer's other units gain on average, and more than the
    painting of another unit excites it."""
    layer, units = "relu2_1", (59, 34)  # its two most active units in the sample atlas
    start = V.FourierImage(32, 32, seed=0).rgb()
    runs = {u: V.visualize(net, layer, u, size=32, steps=12, seed=0) for u in units}
    for u, other in (units, units[::-1]):
        r = runs[u]
        painted = torch.from_numpy(np.asarray(r.image, dtype=np.float32) / 255).permute(2, 0, 1)[None]
        with torch.no_grad():
            gain = (net.extract(painted, [layer])[layer] - net.extract(start, [layer])[layer]).mean((0, 2, 3))
        assert r.steps == 12 and not r.stopped and r.image.size == (32, 32)
        assert r.activation == pytest.approx(V.unit_activation(net, r.image, layer, u))
        assert r.activation > V.unit_activation(net, start, layer, u)
        assert r.activation > V.unit_activation(net, runs[other].image, layer, u)
        assert gain[u] > 0 and gain[u] > gain.mean()
        assert r.history[-1]["activation"] > r.history[0]["activation"]


def test_a_stopped_run_keeps_what_it_made(net, one_thread):
    seen = []
    r = V.visualize(net, "relu1_1", 3, size=16, steps=10, callback=lambda p: seen.append(p) or p.step >= 2)
    assert (r.steps, r.stop_reason, len(seen)) == (2, "stopped", 2) and r.image.size == (16, 16)
    r = V.visualize(net, "relu1_1", 3, size=16, steps=10, time_limit=0)
    assert (r.steps, r.stop_reason) == (1, "time_limit")


@pytest.mark.parametrize("layer, unit, words", [("relu9_9", 0, "relu9_9"), ("relu1_1", 64, "63"),
                                                 ("relu1_1", -1, "-1")])
def test_bad_input_is_one_line_naming_it_and_nothing_is_written(net, tmp_path, capsys, layer, unit, words):
    with pytest.raises(InputError) as err:
        V.visualize(net, layer, unit)
    assert words in str(err.value) and words in err.value.text("zh")
    out = tmp_path / "unit.png"
    out.write_bytes(b"kept")
    assert main(["visualize", layer, str(unit), "-o", str(out), "--steps", "1"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and out.read_bytes() == b"kept"


def test_the_cli_paints_a_png_and_compares_it_with_the_atlas(tmp_path, capsys, net, one_thread):
    from PIL import Image

    from teachkit.patches import get_atlas

    out = tmp_path / "unit.png"
    assert main(["visualize", "relu2_1", "59", "-o", str(out), "--size", "32", "--steps", "2", "--seed", "1"]) == 0
    said = capsys.readouterr().out
    with Image.open(out) as im:
        assert im.size == (32, 32)
        value = V.unit_activation(net, im.convert("RGB"), "relu2_1", 59)
    top = get_atlas("sample", backbone=net).top("relu2_1", 59)[0].value
    assert f"{value:.4g}" in said and f"{value / top:.2f}x" in said


def test_prepared_images_are_read_back_with_their_activation(net, tmp_path, one_thread):
    from PIL import Image

    from teachkit import prepare
    from teachkit.patches import get_atlas, select_units

    item = prepare.prepare_visualize(net, "relu1_1", 5, prepare.FAST, cache_dir=tmp_path)
    assert item.final.size == (32, 32) and item.meta["steps"] == 2
    saved = tmp_path / "prepared" / net.name / "visualize-relu1_1-5" / "unit.png"
    with Image.open(saved) as im:
        assert item.meta["images"][0]["activation"] == pytest.approx(V.unit_activation(net, im.convert("RGB"),
                                                                                         "relu1_1", 5))
    assert prepare.load("visualize", "relu1_1", "5", cache_dir=tmp_path).meta == item.meta
    atlas = get_atlas("sample", backbone=net)
    assert V.default_units(atlas) == [(l, select_units(atlas, l, "most_active", 1)[0]) for l in atlas.layers]
    assert "visualize" in prepare.KINDS
