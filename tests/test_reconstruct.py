"""What each layer keeps: content reconstructions and textures from white noise (real vgg19, tiny
images, few steps), progress and cancelling, the grids and `teachkit reconstruct`."""

from __future__ import annotations

import threading

import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from teachkit import reconstruct as R
from teachkit.cli import main
from teachkit.costs import gram_matrix, style_cost
from teachkit.images import to_tensor
from teachkit.samples import sample_content, sample_style


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cat():
    return to_tensor(sample_content("chelsea", 48))  # (1, 3, 32, 48)


def test_shallow_layer_keeps_pixels_deep_layer_does_not(net, cat):
    shallow = R.reconstruct_content(net, cat, "relu1_1", size=None, steps=20)
    deep = R.reconstruct_content(net, cat, "relu4_1", size=None, steps=20)
    assert isinstance(shallow.image, Image.Image) and shallow.image.size == (48, 32)
    assert shallow.distance == pytest.approx(R.pixel_distance(shallow.tensor, cat))
    assert shallow.distance < 0.06
    assert deep.distance > 2 * shallow.distance
    assert shallow.final["total"] < 0.01 < shallow.history[0]["total"]
    noise_distance = R.pixel_distance(R.white_noise(cat.shape, 0), cat)
    assert shallow.distance < noise_distance / 3


def test_reconstruction_is_deterministic_for_a_seed(net, cat):
    a = R.reconstruct_content(net, cat, "relu1_1", size=None, steps=6, seed=7)
    b = R.reconstruct_content(net, cat, "relu1_1", size=None, steps=6, seed=7)
    c = R.reconstruct_content(net, cat, "relu1_1", size=None, steps=6, seed=8)
    assert torch.equal(a.tensor, b.tensor)
    assert not torch.equal(a.tensor, c.tensor)


def test_texture_synthesis_lowers_style_cost_a_lot(net):
    S = to_tensor(sample_style("stained_glass", 40))
    layers = ["relu1_1", "relu2_1"]
    r = R.synthesize_texture(net, S, layers, size=None, steps=20)
    assert r.kind == "texture" and r.layers == tuple(layers)
    assert r.distance < 0.15  # less than 15 % of the starting J_style is left
    # checked independently with costs.style_cost and plain uniform weights
    f_S = net.extract(S, layers)
    grams = {l: gram_matrix(f_S[l]) for l in layers}
    w = {l: 0.5 for l in layers}
    before, _ = style_cost(grams, net.extract(R.white_noise(S.shape, 0), layers), w)
    after, _ = style_cost(grams, net.extract(r.tensor, layers), w)
    assert float(after) < 0.2 * float(before)
    assert set(r.history[-1]) >= {"total", "style", "style/relu1_1", "style/relu2_1"}


def test_progress_reports_and_cancel_keeps_the_result(net, cat):
    seen = []

    def cb(p):
        seen.append(p)
        return p.step >= 4  # stop after the 4th evaluation

    r = R.reconstruct_content(net, cat, "relu2_1", size=None, steps=50, callback=cb, image_every=2)
    assert r.stopped and r.steps == 4 and len(r.history) == 4
    assert [p.step for p in seen] == [1, 2, 3, 4] and all(p.total == 50 for p in seen)
    assert all(p.task == "reconstruct" for p in seen)
    assert [p.image is not None for p in seen] == [False, True, False, True]
    assert {"total", "content", "distance"} <= set(seen[0].values)
    assert isinstance(r.image, Image.Image) and r.tensor.shape == cat.shape

    stop = threading.Event()
    stop.set()
    r2 = R.synthesize_texture(net, cat, ["relu1_1"], size=None, steps=50, stop=stop)
    assert r2.stopped and r2.steps == 0 and r2.image.size == (48, 32)  # set before the start: no step


def test_grids_one_column_per_layer(net, cat):
    reports = []
    fig = R.reconstruction_grid_figure(cat, R.content_reconstructions(net, cat, ("relu1_1", "relu2_1"), size=None,
                                                                      steps=3, callback=reports.append))
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    assert [p.step for p in reports] == list(range(1, 7)) and reports[-1].total == 6  # one bar over both
    assert [str(p.message) for p in reports[::3]] == ["content relu1_1 (1/2)", "content relu2_1 (2/2)"]
    assert "RMSE" in fig.axes[1].get_xlabel()
    results = R.textures(net, cat, ("relu1_1", "relu2_1"), size=None, steps=2)
    assert [r.layers for r in results] == [("relu1_1",), ("relu1_1", "relu2_1")]
    fig2 = R.reconstruction_grid_figure(cat, results)
    assert len(fig2.axes) == 3 and "J_style" in fig2.axes[2].get_xlabel()
    stop = threading.Event()
    stop.set()
    partial = R.content_reconstructions(net, cat, ("relu1_1", "relu2_1", "relu3_1"), size=None, steps=5, stop=stop)
    assert len(partial) == 1 and partial[0].stopped
    fig3 = R.reconstruction_grid_figure(cat, partial, n_columns=3)
    assert len(fig3.axes) == 4  # the empty places are kept
    zh = R.reconstruction_grid_figure(cat, partial, n_columns=3, lang="zh")
    assert "像素" in zh.axes[1].get_xlabel() and zh.axes[0].get_title() == "原图"
    assert zh.get_size_inches()[0] <= 11


def test_bad_arguments_raise(net, cat):
    with pytest.raises(ValueError, match="unknown layer"):
        R.reconstruct_content(net, cat, "relu9_1", steps=2)
    with pytest.raises(ValueError):
        R.reconstruct_content(net, cat, "relu1_1", steps=0)
    with pytest.raises(ValueError):
        R.synthesize_texture(net, cat, [], steps=2)
    with pytest.raises(ValueError):
        R.white_noise((1, 3, 8, 8), amplitude=0)


def test_cli_reconstruct_writes_grids(tmp_path, capsys):
    c, s = tmp_path / "c.png", tmp_path / "s.png"
    assert main(["reconstruct", "content", "chelsea", "--layers", "relu1_1,relu3_1", "--size", "32",
                 "--steps", "3", "-o", str(c)]) == 0
    assert main(["reconstruct", "style", "stained_glass", "--layers", "relu1_1,relu2_1", "--size", "32",
                 "--steps", "3", "--seed", "1", "-o", str(s)]) == 0
    assert c.read_bytes()[:4] == b"\x89PNG" and s.read_bytes()[:4] == b"\x89PNG"
    out = capsys.readouterr().out
    assert "pixel RMSE" in out and "J_style left" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["reconstruct", "content", "no-such.png", "-o", "{tmp}/x.png"],
        ["reconstruct", "content", "chelsea", "--layers", "relu1_1,nope", "-o", "{tmp}/x.png"],
        ["reconstruct", "style", "chelsea", "--steps", "0", "-o", "{tmp}/x.png"],
        ["reconstruct", "style", "chelsea", "--size", "4", "-o", "{tmp}/x.png"],
        ["reconstruct", "content", "chelsea", "-o", "{tmp}/x.doc"],
    ],
)
def test_cli_reconstruct_bad_input_exits_2(tmp_path, capsys, argv):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("teachkit: error:") and err.count("\n") == 1


def test_initial_image_is_what_a_reconstruction_starts_from(net):
    """The start a page shows before running = the engine's start: a run that is stopped before its
    first step returns it (and it is faint noise of the image's size, around grey)."""
    import threading

    from teachkit.images import to_tensor
    from teachkit.reconstruct import DEFAULT_NOISE, initial_image, reconstruct_content
    from teachkit.samples import sample_content

    photo = sample_content("coffee", 64)
    start = to_tensor(initial_image(photo, 32, seed=5))
    assert max(start.shape[-2:]) == 32
    assert float((start - 0.5).abs().max()) <= DEFAULT_NOISE / 2 + 1 / 255
    stop = threading.Event()
    stop.set()
    r = reconstruct_content(net, photo, "relu1_1", size=32, steps=3, seed=5, stop=stop)
    assert r.steps == 0 and torch.allclose(to_tensor(r.image), start, atol=1.5 / 255)


def test_time_limit_is_the_engines_and_says_why_it_stopped(net):
    from teachkit.reconstruct import reconstruct_content
    from teachkit.samples import sample_content

    photo = sample_content("coffee", 32)
    r = reconstruct_content(net, photo, "relu1_1", size=32, steps=3, time_limit=0)  # out of time after step 1
    assert (r.steps, r.stopped, r.stop_reason) == (1, True, "time_limit")
    full = reconstruct_content(net, photo, "relu1_1", size=32, steps=2, time_limit=3600)
    assert (full.steps, full.stopped, full.stop_reason) == (2, False, None)
