"""The style-transfer engine (teachkit.transfer) at small sizes: it must really optimise, be
deterministic, report every term, stop when asked, and build its style targets correctly."""

from __future__ import annotations

import json
import math
import threading

import pytest
import torch

from teachkit import costs
from teachkit.images import to_tensor
from teachkit.samples import sample_content, sample_style
from teachkit.progress import Progress
from teachkit.transfer import (
    DEFAULT_STYLE_LAYERS,
    StyleTransfer,
    TransferConfig,
    TransferResult,
    blended_style_grams,
    default_pyramid,
    default_scales,
    rgb_to_yiq,
    schedule,
    split_steps,
    transfer,
    white_noise,
    yiq_to_rgb,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny images: one thread is fastest (conftest)


@pytest.fixture(scope="module")
def content64():
    return sample_content("chelsea", size=64)


@pytest.fixture(scope="module")
def style64():
    return sample_style("stained_glass", size=64)


def small(**kw) -> TransferConfig:
    base = dict(size=48, steps=4, scales=None, preview_every=0, init="noise")
    base.update(kw)
    return TransferConfig(**base)


# ---- the optimisation works --------------------------------------------------------------------


def test_style_only_from_noise_cuts_style_cost_tenfold(net, style64):
    content = to_tensor(sample_content("coffee", size=64))
    cfg = small(alpha=0.0, beta=1.0, style_layers=("relu1_1", "relu2_1"), layer_weights=(1.0, 0.01))
    st = StyleTransfer(content, to_tensor(style64), cfg, backbone=net)
    start = st.costs()
    st.step(30)
    end = st.costs()
    assert start["style"] / end["style"] >= 10, (start["style"], end["style"])
    # alpha = 0 and the content layer lies deeper than every style layer: not computed at all
    assert math.isnan(end["content"])


def test_content_only_from_noise_reconstructs_the_content(net, content64, style64):
    c = to_tensor(content64)
    cfg = small(alpha=1.0, beta=0.0, tv_weight=0.0, content_layer="relu1_1", style_layers=("relu2_1",))
    st = StyleTransfer(c, to_tensor(style64), cfg, backbone=net)
    noise_err = float((st.tensor() - c).abs().mean())
    st.step(60)
    err = float((st.tensor() - c).abs().mean())
    assert noise_err > 0.2
    assert err < 0.07 and err < noise_err / 4, (err, noise_err)
    # beta = 0 and relu2_1 lies deeper than the content layer: the style term is not computed
    assert math.isnan(st.history[-1]["style/relu2_1"])


def test_preserve_color_keeps_the_contents_chrominance(net, content64):
    c = to_tensor(content64)
    s = to_tensor(sample_style("swirls", size=64))
    cfg = dict(steps=8, alpha=1.0, beta=1e-3, size=64, scales=(64,), preview_every=0)
    kept = transfer(content64, s, TransferConfig(preserve_color=True, **cfg), backbone=net)
    free = transfer(content64, s, TransferConfig(preserve_color=False, **cfg), backbone=net)
    iq_c = rgb_to_yiq(c)[:, 1:]
    d_kept = float((rgb_to_yiq(kept.tensor)[:, 1:] - iq_c).abs().mean())
    d_free = float((rgb_to_yiq(free.tensor)[:, 1:] - iq_c).abs().mean())
    assert d_kept < 0.01, d_kept  # only 8-bit rounding and clamping to the RGB cube remain
    assert d_free > 5 * d_kept, (d_free, d_kept)
    # and the luminance did change (it is what was optimised)
    assert float((rgb_to_yiq(kept.tensor)[:, :1] - rgb_to_yiq(c)[:, :1]).abs().mean()) > 0.02


def test_yiq_round_trip_and_the_textbook_matrix():
    x = torch.rand(1, 3, 5, 7, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(yiq_to_rgb(rgb_to_yiq(x)), x, atol=1e-6)
    y = rgb_to_yiq(torch.ones(1, 3, 1, 1))
    assert torch.allclose(y.flatten(), torch.tensor([1.0, 0.0, 0.0]), atol=1e-5)  # white: Y=1, no chroma
    # scikit-image's YIQ against the FCC table, written out: Y (the only channel optimised) agrees
    # to float precision; I and Q agree to the 4th digit (skimage uses the NTSC 1987 coefficients)
    fcc = torch.tensor([[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]])
    by_hand = torch.einsum("ij,njhw->nihw", fcc, x)
    got = rgb_to_yiq(x)
    assert torch.allclose(got[:, 0], by_hand[:, 0], atol=1e-6)
    assert torch.allclose(got[:, 1:], by_hand[:, 1:], atol=1e-3)


# ---- determinism -------------------------------------------------------------------------------


def test_same_seed_bit_identical_and_other_seed_differs(net, content64, style64):
    cfg = small(size=32, steps=5, seed=3)
    a = transfer(content64, style64, cfg, backbone=net)
    b = transfer(content64, style64, cfg, backbone=net)
    c = transfer(content64, style64, small(size=32, steps=5, seed=4), backbone=net)
    assert torch.equal(a.tensor, b.tensor)
    assert a.image.tobytes() == b.image.tobytes()
    assert [r["total"] for r in a.history] == [r["total"] for r in b.history]
    assert not torch.equal(a.tensor, c.tensor)


# ---- progress, stopping ------------------------------------------------------------------------


def test_callback_receives_every_term_every_step(net, content64, style64):
    seen: list[Progress] = []
    cfg = small(steps=4, preview_every=2)
    res = transfer(content64, style64, cfg, callback=seen.append, backbone=net)
    assert [p.step for p in seen] == [1, 2, 3, 4]
    assert all(p.task == "transfer" and p.total == 4 for p in seen)
    keys = {"content", "style", "tv", "total"} | {f"style/{l}" for l in DEFAULT_STYLE_LAYERS}
    for p in seen:
        assert keys <= set(p.values), set(p.values)
        assert all(math.isfinite(p.values[k]) for k in keys)
        assert "48 px" in str(p.message)
    assert [p.image is not None for p in seen] == [False, True, False, True]
    assert seen[1].image.size == res.image.size
    # the recorded total is the formula applied to the recorded terms, with the weights reported
    r = res.history[-1]
    w = res.weights
    assert r["total"] == pytest.approx(w["alpha"] * r["content"] + w["beta"] * r["style"] + w["tv_weight"] * r["tv"],
                                       rel=1e-5)
    assert r["style"] == pytest.approx(sum(w["layer_weights"][l] * r[f"style/{l}"] for l in DEFAULT_STYLE_LAYERS),
                                       rel=1e-5)
    for rec in res.history:
        assert {"step", "scale", "size", "elapsed"} <= set(rec)
    assert res.history[-1]["elapsed"] <= res.seconds


def test_callback_true_stops_with_the_latest_image(net, content64, style64):
    images = []

    def cb(p):
        images.append(p.image)
        return p.step == 3

    res = transfer(content64, style64, small(steps=20, preview_every=1), callback=cb, backbone=net)
    assert res.stopped is True
    assert len(res.history) == 3
    assert res.image.tobytes() == images[-1].tobytes()


def test_stop_event_and_keyboard_interrupt_stop(net, content64, style64):
    stop = threading.Event()

    def cb(p):
        if p.step == 2:
            stop.set()

    res = transfer(content64, style64, small(steps=20), callback=cb, stop=stop, backbone=net)
    assert res.stopped and len(res.history) == 2

    def interrupt(p):
        if p.step == 2:
            raise KeyboardInterrupt

    res = transfer(content64, style64, small(steps=20), callback=interrupt, backbone=net)
    assert res.stopped and len(res.history) == 2 and res.image.size[0] == 48


def test_a_set_event_before_starting_returns_the_initial_image(net, content64, style64):
    stop = threading.Event()
    stop.set()
    res = transfer(content64, style64, small(steps=5), stop=stop, backbone=net)
    assert res.stopped and res.history == [] and max(res.image.size) == 48


# ---- multi-scale, several styles ---------------------------------------------------------------


def test_multi_scale_reaches_the_target_size(net, content64, style64):
    res = transfer(content64, style64, TransferConfig(size=64, steps=6, scales=(32, 64), preview_every=0), backbone=net)
    assert max(res.image.size) == 64 and res.image.size == content64.size
    assert res.tensor.shape[-2:] == (content64.size[1], content64.size[0])
    assert [r["scale"] for r in res.history] == [1] * 4 + [2] * 2
    assert {r["size"] for r in res.history} == {32, 64}
    assert [r["step"] for r in res.history] == list(range(1, 7))


def test_scale_schedule_helpers():
    assert default_scales(100) == (100,) and default_scales(128) == (128,)
    assert default_scales(256) == (128, 256)
    assert default_scales(384) == (192, 384) and default_scales(255) == (255,)
    assert default_scales(1024) == (128, 256, 512, 1024)
    assert default_pyramid(256) == 3 and default_pyramid(512) == 4 and default_pyramid(100) == 1
    assert split_steps(300, (128, 256, 512)) == [171, 86, 43]
    for steps in (0, 1, 7, 301):
        assert sum(split_steps(steps, (100, 200, 400))) == steps
    assert schedule(TransferConfig(size=96, scales=(32, 64))).sizes == (32, 64, 96)  # the target size is appended


def test_several_styles_blend_by_weight(net, content64):
    s1 = to_tensor(sample_style("stained_glass", size=48))
    s2 = to_tensor(sample_style("waves", size=48))
    layers = ["relu1_1", "relu2_1"]
    g1 = blended_style_grams(net, [s1], layers, (48, 48))
    g2 = blended_style_grams(net, [s2], layers, (48, 48))
    g = blended_style_grams(net, [s1, s2], layers, (48, 48), weights=[3.0, 1.0])
    for l in layers:
        assert torch.allclose(g[l], 0.75 * g1[l] + 0.25 * g2[l], rtol=1e-5)
    g_only1 = blended_style_grams(net, [s1, s2], layers, (48, 48), weights=[1.0, 0.0])
    assert torch.allclose(g_only1["relu1_1"], g1["relu1_1"])
    res = transfer(content64, [s1, s2], small(steps=2, style_weights=(0.3, 0.7)), backbone=net)
    assert res.config.style_weights == (0.3, 0.7) and len(res.history) == 2
    with pytest.raises(ValueError, match="style weights"):
        transfer(content64, [s1, s2], small(style_weights=(1.0,)), backbone=net)


def test_style_gram_is_scaled_by_the_ratio_of_positions(net):
    layers = ["relu1_1", "relu2_1", "relu3_1"]
    style = to_tensor(sample_style("waves", size=64))  # 64 x 64
    target = blended_style_grams(net, [style], layers, (40, 24))  # generated: 40 high, 24 wide
    with torch.no_grad():
        feats = net.extract(style, layers)
        probe = net.extract(torch.zeros(1, 3, 40, 24), layers)
    for l in layers:
        m_s = feats[l].shape[-1] * feats[l].shape[-2]
        m_g = probe[l].shape[-1] * probe[l].shape[-2]
        expected = costs.gram_matrix(feats[l])[0] * m_g / m_s
        assert torch.allclose(target[l], expected, rtol=1e-5), l
    # which makes J_style comparable whatever the style image's size: the same texture painted at
    # 48 and at 96 px gives nearly the same cost against one generated image
    g = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a_g = net.extract(g, ["relu2_1"])["relu2_1"]
    j = []
    for side in (48, 96):
        t = blended_style_grams(net, [to_tensor(sample_style("waves", size=side))], ["relu2_1"], (48, 48))
        j.append(float(costs.style_layer_cost(t["relu2_1"], a_g)))
    assert 0.5 < j[0] / j[1] < 2.0, j


# ---- the steppable object ----------------------------------------------------------------------


def test_pyramid_parametrisation(net, content64, style64):
    c, s = to_tensor(content64), to_tensor(style64)
    st = StyleTransfer(c, s, small(pyramid=3), backbone=net)
    assert st.levels == 3 and len(st.params) == 3
    assert [tuple(p.shape[-2:]) for p in st.params] == [(43, 64), (21, 32), (10, 16)]
    start = st.tensor()
    plain = StyleTransfer(c, s, small(pyramid=1), backbone=net)
    assert torch.equal(start, plain.tensor())  # same seed, coarse levels start at zero: same G0
    st.step(3)
    assert all(float(p.detach().abs().max()) > 0 for p in st.params[1:])  # the coarse levels moved
    # G is the sum of the levels: plant constants (bilinear upsampling keeps a constant) and one
    # coarse pixel pattern, and read G back
    with torch.no_grad():
        st.params[0].fill_(0.1)
        st.params[1].fill_(0.2)
        st.params[2].fill_(0.3)
    assert torch.allclose(st.tensor(), torch.full((1, 3, 43, 64), 0.6), atol=1e-6)
    with torch.no_grad():
        st.params[0].zero_()
        st.params[1].zero_()
        st.params[2].zero_()
        st.params[2][..., :, :8] = 0.8  # the left half of the coarsest level (16 px wide)
    g = st.tensor()
    assert torch.allclose(g[..., :, :28], torch.tensor(0.8)) and torch.allclose(g[..., :, 36:], torch.tensor(0.0))
    auto = StyleTransfer(c, s, small(), backbone=net)
    assert auto.levels == default_pyramid(64) == 1


def test_style_transfer_steps_one_at_a_time(net, content64, style64):
    st = StyleTransfer(to_tensor(content64), to_tensor(style64), small(init="content"), backbone=net)
    assert st.costs()["content"] == 0.0  # starts at the content photo
    recs = st.step(2)
    assert [r["step"] for r in recs] == [1, 2] and st.history == recs
    assert recs[0]["content"] == 0.0  # the record of a step holds the costs it evaluated
    assert st.step()[0]["step"] == 3
    assert st.image().size == content64.size
    assert st.tensor().min() >= 0 and st.tensor().max() <= 1


@pytest.mark.parametrize("extra", [{"optimizer": "adam", "lr": 0.05}, {"dtype": "bfloat16"},
                                   {"init": "blend"}, {"normalization": "gatys"}, {"normalization": "none"},
                                   {"pyramid": 1}, {"pyramid": 3, "optimizer": "adam", "lr": 0.05}])
def test_options_run_and_lower_the_cost(net, content64, style64, extra):
    st = StyleTransfer(to_tensor(content64), to_tensor(style64), small(size=32, **extra), backbone=net)
    first = st.costs()["total"]
    st.step(6)
    last = st.costs()["total"]
    assert math.isfinite(last) and last < first, (extra, first, last)


# ---- results, config ---------------------------------------------------------------------------


def test_save_log_writes_valid_json(net, content64, style64, tmp_path):
    res = transfer(content64, style64, small(steps=2, alpha=0.0, style_layers=("relu1_1",)), backbone=net)
    assert isinstance(res, TransferResult)
    path = res.save_log(tmp_path / "sub" / "log.json")
    data = json.loads(open(path).read())
    assert data["steps"] == 2 and len(data["history"]) == 2
    assert data["history"][0]["content"] is None  # not computed (alpha = 0, deeper layer) -> null
    assert data["config"]["alpha"] == 0.0 and data["config"]["style_layers"] == ["relu1_1"]
    assert set(data["costs"]) >= {"content", "style", "style/relu1_1", "tv", "total"}


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"normalization": "bogus"}, "normalization"),
        ({"layer_weights": (1.0, 2.0)}, "layer weights"),
        ({"init": "zeros"}, "init"),
        ({"optimizer": "sgd"}, "optimizer"),
        ({"scales": (64, 32)}, "scales"),
        ({"size": 8}, "size"),
        ({"dtype": "float16"}, "dtype"),
        ({"alpha": -1.0}, "alpha"),
    ],
)
def test_bad_config_raises_value_error(kw, match):
    with pytest.raises(ValueError, match=match):
        schedule(TransferConfig(**kw), 1)


def test_unknown_layer_is_a_value_error_naming_it(net, content64, style64):
    with pytest.raises(ValueError, match="relu9_9"):
        transfer(content64, style64, small(content_layer="relu9_9"), backbone=net)


def test_defaults_are_filled_per_normalization():
    for norm in ("lecture", "gatys", "none"):
        c = schedule(TransferConfig(normalization=norm), 1).config
        assert c.alpha is not None and c.beta is not None and c.tv_weight is not None
        assert len(c.layer_weights) == len(c.style_layers)
    assert schedule(TransferConfig(alpha=2.0), 1).config.alpha == 2.0


# ---- auto normalisation, precision, noise, presets ---------------------------------------------


def test_auto_weights_follow_the_formula(net, content64, style64):
    c, s = to_tensor(content64), to_tensor(style64)  # same size: the style target needs no rescaling
    st = StyleTransfer(c, s, small(beta=7.0, tv_weight=3.0), backbone=net)
    assert st.config.normalization == "auto"  # the default
    with torch.no_grad():
        f_c = net.extract(c, ["relu4_2"])["relu4_2"].double()
        f_s = net.extract(s, list(DEFAULT_STYLE_LAYERS))
    assert st.weights["alpha"] == pytest.approx(1.0 / (0.5 * float(f_c.pow(2).sum())), rel=1e-3)
    with torch.no_grad():
        f_cs = net.extract(c, list(DEFAULT_STYLE_LAYERS))
    for l in DEFAULT_STYLE_LAYERS:
        a = f_s[l][0].double().flatten(1)  # (n_C, M)
        b = f_cs[l][0].double().flatten(1)
        gram_s, gram_c = torch.einsum("km,jm->kj", a, a), torch.einsum("km,jm->kj", b, b)
        n_C, M = a.shape
        # the style cost of the content photo itself, 1 / (2 M n_C) ||G(S) - G(C)||^2, gets weight 1/5
        expected = 0.2 / (float((gram_s - gram_c).pow(2).sum()) / (2 * M * n_C))
        assert st.weights["layer_weights"][l] == pytest.approx(expected, rel=2e-3), l
    assert st.weights["tv_weight"] == pytest.approx(3.0 / (3 * 43 * 64))
    assert st.weights["beta"] == 7.0
    # started at the content photo, every weighted style term is 1/5 (the whole way still to go)
    at_c = StyleTransfer(c, s, small(beta=7.0, init="content", pyramid=1), backbone=net)
    first = at_c.costs()
    for l in DEFAULT_STYLE_LAYERS:
        assert at_c.weights["layer_weights"][l] * first[f"style/{l}"] == pytest.approx(0.2, rel=2e-3), l
    # so the weighted content term starts at ||a(G) - a(C)||^2 / ||a(C)||^2
    with torch.no_grad():
        f_g = net.extract(st.tensor(), ["relu4_2"])["relu4_2"].double()
    rel = float((f_g - f_c).pow(2).sum() / f_c.pow(2).sum())
    assert st.weights["alpha"] * st.costs()["content"] == pytest.approx(rel, rel=1e-2)


def test_white_noise_is_the_engines_start(net, content64, style64):
    st = StyleTransfer(to_tensor(content64), to_tensor(style64), small(seed=5, pyramid=1), backbone=net)
    assert torch.equal(st.tensor(), white_noise((1, 3, 43, 64), 5))
    faint = white_noise((1, 3, 20, 20), 1, amplitude=0.2)
    assert 0.4 <= float(faint.min()) and float(faint.max()) <= 0.6
    with pytest.raises(ValueError, match="amplitude"):
        white_noise((1, 3, 4, 4), amplitude=0)


def test_dtype_auto_is_float32_without_native_bfloat16(monkeypatch):
    import teachkit.transfer as T

    cpu = torch.device("cpu")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert T.choose_dtype("auto", cpu) == (None, None)
    dtype, warning = T.choose_dtype("bfloat16", cpu)
    assert dtype is None and "slower" in warning.text("en") and "\n" not in warning.text("en")
    assert T.choose_dtype("bfloat16", cpu, force=True) == (torch.bfloat16, None)
    # AVX-512 without BF16 / AMX: still emulated
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    assert T.choose_dtype("auto", cpu)[0] is None
    # native: bfloat16 -- unless oneDNN is capped below AVX-512
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert T.choose_dtype("auto", cpu) == (torch.bfloat16, None)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert T.choose_dtype("auto", cpu)[0] is None
    assert T.choose_dtype("float32", cpu) == (None, None)


def test_slow_bfloat16_falls_back_with_a_warning(net, content64, style64, monkeypatch):
    import teachkit.transfer as T

    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    with pytest.warns(T.SlowDtypeWarning):
        st = StyleTransfer(to_tensor(content64), to_tensor(style64), small(dtype="bfloat16"), backbone=net)
    assert st.autocast_dtype is None
    forced = StyleTransfer(to_tensor(content64), to_tensor(style64), small(dtype="bfloat16", force_dtype=True),
                           backbone=net)
    assert forced.autocast_dtype == torch.bfloat16


def test_presets():
    q = schedule(TransferConfig.preset("quick"), 1)
    assert q.config.size == 256 and q.sizes == (128, 256) and q.scale_steps == (40, 20) and q.first == 128
    d = schedule(TransferConfig(), 1)
    assert d.start == "blend" and d.sizes == (192, 384) and d.scale_steps == (50, 25) and d.steps == 75
    assert TransferConfig.preset("quick", size=200).size == 200
    assert TransferConfig.preset("default") == TransferConfig()
    with pytest.raises(ValueError, match="quick"):
        TransferConfig.preset("fast")


def test_one_loop_for_reconstructions(net, content64):
    # a content reconstruction is the transfer with beta = 0: the engine's records, no style target
    from teachkit import reconstruct as R

    r = R.reconstruct_content(net, content64, "relu1_1", size=32, steps=3)
    assert set(r.history[0]) >= {"step", "size", "elapsed", "content", "style", "tv", "total"}
    assert r.weights["beta"] == 0.0 and r.weights["layer_weights"] == {}


# ---- a student's own cost functions (costs.CostFunctions) ----------------------------------------


def _student_functions() -> costs.CostFunctions:
    """The lecture's formulas written the way a student would (independent of teachkit's code)."""
    def content_cost(a_C, a_G):
        return ((a_C - a_G) ** 2).sum() / 2

    def gram_matrix(a):
        A = a.reshape(a.shape[1], -1)  # (n_C, n_H n_W)
        return A @ A.T

    def layer_style_cost(a_S, a_G):
        _, n_C, n_H, n_W = a_G.shape
        return ((gram_matrix(a_S) - gram_matrix(a_G)) ** 2).sum() / (2 * n_H * n_W * n_C)

    def total_cost(j_content, j_style, alpha, beta):
        return alpha * j_content + beta * j_style

    return costs.CostFunctions(content_cost, gram_matrix, layer_style_cost, total_cost)


@pytest.mark.parametrize("normalization", ["lecture", "auto"])
@pytest.mark.parametrize("which", ["reference", "student", "gram_only"])
def test_own_cost_functions_give_the_default_run(net, content64, which, normalization):
    # content and style of the same size: an own layer_style_cost sees the style at G's size, as the
    # default run does then (no M_G / M_S rescaling), so all runs optimise the same J
    style = to_tensor(sample_style("stained_glass", size=64).resize(content64.size))
    content = to_tensor(content64)
    cfg = small(normalization=normalization, style_layers=("relu1_1", "relu2_1"), layer_weights=(0.5, 0.5),
                tv_weight=0.0 if normalization == "lecture" else 1.0)
    cf = {"reference": costs.CostFunctions.reference(), "student": _student_functions(),
          "gram_only": costs.CostFunctions(gram_matrix=_student_functions().gram_matrix)}[which]
    plain = StyleTransfer(content, style, cfg, backbone=net)
    own = StyleTransfer(content, style, cfg, backbone=net, cost_functions=cf)
    a, b = plain.step(3), own.step(3)
    for ra, rb in zip(a, b):
        for k in ("content", "style", "style/relu1_1", "style/relu2_1", "total"):
            assert rb[k] == pytest.approx(ra[k], rel=1e-4), (k, ra[k], rb[k])
    assert torch.allclose(plain.tensor(), own.tensor(), atol=1e-4)
    assert a[-1]["total"] < a[0]["total"]  # it really optimised


def test_own_cost_functions_are_really_called(net, content64, style64):
    calls = {"content": 0, "style": 0, "total": 0}
    ref = costs.CostFunctions.reference()

    def content_cost(a_C, a_G):
        calls["content"] += 1
        assert a_C.shape == a_G.shape and a_G.dim() == 4 and a_G.dtype == torch.float32
        return 2 * ref.content_cost(a_C, a_G)  # twice the lecture's: J_content doubles

    def layer_style_cost(a_S, a_G):
        calls["style"] += 1
        assert a_S.shape == a_G.shape  # the style image is kept at G's working size
        return ref.layer_style_cost(a_S, a_G)

    def total_cost(jc, js, alpha, beta):
        calls["total"] += 1
        return ref.total_cost(jc, js, alpha, beta)

    cfg = small(normalization="lecture", style_layers=("relu1_1",), layer_weights=(1.0,), tv_weight=0.0)
    content, style = to_tensor(content64), to_tensor(style64)
    own = StyleTransfer(content, style, cfg, backbone=net,
                        cost_functions=costs.CostFunctions(content_cost, None, layer_style_cost, total_cost))
    plain = StyleTransfer(content, style, cfg, backbone=net)
    assert own.costs()["content"] == pytest.approx(2 * plain.costs()["content"], rel=1e-5)
    own.step(1)
    assert calls["content"] >= 2 and calls["style"] >= 2 and calls["total"] >= 2


def test_own_cost_functions_need_the_lecture_constants(net, content64, style64):
    with pytest.raises(ValueError, match="normalization"):
        StyleTransfer(to_tensor(content64), to_tensor(style64), small(normalization="gatys"), backbone=net,
                      cost_functions=costs.CostFunctions.reference())


# ---- the resolved plan, progress with the scale and weights, the time limit ----------------------


def test_the_plan_is_what_the_engine_runs(net, content64, style64):
    from teachkit.transfer import plan

    cfg = TransferConfig(size=64, scales=(32, 64), steps=6, preview_every=0, init="noise", dtype="float32",
                         style_layers=("relu1_1", "relu2_1"))
    p = plan(content64, [style64], cfg, backbone=net)
    assert [s.size for s in p.scales] == [32, 64] and [s.steps for s in p.scales] == split_steps(6, (32, 64))
    assert p.steps == 6 and p.first.size == 32 and p.dtype == "float32" and p.start == "noise"
    assert (p.scales[1].height, p.scales[1].width) == (to_tensor(content64).shape[-2], 64)
    json.dumps(p.to_dict(), allow_nan=False)
    # the weights: under 'auto' derived from each scale's targets -- the same as a StyleTransfer at that size
    from teachkit.images import resize_long_side

    for sp in p.scales:
        st = StyleTransfer(to_tensor(resize_long_side(content64, sp.size)),
                           to_tensor(resize_long_side(style64, sp.size)), cfg, backbone=net)
        assert sp.weights["alpha"] == pytest.approx(st.weights["alpha"], rel=1e-6)
        for l in cfg.style_layers:
            assert sp.weights["layer_weights"][l] == pytest.approx(st.weights["layer_weights"][l], rel=1e-5)
    assert p.scales[0].weights["alpha"] != pytest.approx(p.scales[1].weights["alpha"], rel=0.1)  # per scale
    seen = []
    result = transfer(content64, [style64], cfg, backbone=net, callback=seen.append)
    assert result.plan.to_dict() == p.to_dict()
    for q in seen:  # every report carries its scale and the weights J multiplied there
        sp = result.plan.scale(q.scale)
        assert q.size == sp.size and q.weights == sp.weights
    assert [q.scale for q in seen] == [1] * p.scales[0].steps + [2] * p.scales[1].steps


@pytest.mark.parametrize("normalization", costs.NORMALIZATIONS)
def test_weighted_parts_add_up_to_the_engines_j_in_every_normalization(net, content64, style64, normalization):
    cfg = TransferConfig(size=48, scales=(24, 48), scale_steps=(2, 2), normalization=normalization, init="noise",
                         preview_every=0, style_layers=("relu1_1", "relu2_1"), tv_weight=None, dtype="float32")
    result = transfer(content64, [style64], cfg, backbone=net)
    assert len(result.history) == 4
    for rec, point in zip(result.history, result.weighted_history()):
        assert point["total"] == rec["total"]  # the engine's own J: the oracle
        assert point["content"] + point["style"] + point["tv"] == pytest.approx(rec["total"], rel=1e-4)
        w = result.plan.scale(rec["scale"]).weights
        assert point["style"] == pytest.approx(w["beta"] * sum(
            w["layer_weights"][l] * rec[f"style/{l}"] for l in cfg.style_layers), rel=1e-4)


def test_time_limit_stops_and_says_after_how_many_steps(net, content64, style64):
    cfg = small(steps=5)
    result = transfer(content64, [style64], cfg, backbone=net, time_limit=0)  # out of time after step 1
    assert result.stopped and result.stop_reason == "time_limit" and result.time_limited
    assert (result.steps_done, result.steps_planned) == (1, 5)
    msg = result.stop_message()
    assert "1 of 5" in msg.text("en") and "第 1 步" in msg.text("zh") and "共 5 步" in msg.text("zh")
    full = transfer(content64, [style64], cfg, backbone=net, time_limit=3600)
    assert not full.stopped and full.stop_reason is None and full.stop_message() is None
    assert full.steps_done == full.steps_planned == 5


def test_initial_image_is_the_start_at_the_first_scale(content64):
    from teachkit.images import resize_long_side
    from teachkit.transfer import initial_image

    cfg = TransferConfig(size=64, scales=(32, 64), init="blend", init_noise=0.5, seed=4)
    got = to_tensor(initial_image(content64, cfg))
    c = to_tensor(resize_long_side(content64, 32))
    assert got.shape == c.shape
    assert torch.allclose(got, 0.5 * c + 0.5 * white_noise(c.shape, 4), atol=1.5 / 255)


def test_transfer_with_the_reference_cost_functions_equals_the_default_run(net, content64):
    style = sample_style("stained_glass", size=64).resize(content64.size)  # same shape: see above
    cfg = TransferConfig(size=64, scales=(32, 64), scale_steps=(2, 2), preview_every=0, init="noise",
                         style_layers=("relu1_1", "relu2_1"), dtype="float32")
    plain = transfer(content64, [style], cfg, backbone=net)
    own = transfer(content64, [style], cfg, backbone=net, cost_functions=_student_functions())
    assert [r["total"] for r in own.history] == pytest.approx([r["total"] for r in plain.history], rel=1e-4)
    assert torch.allclose(own.tensor, plain.tensor, atol=1e-4)


def test_own_cost_functions_misused_give_one_readable_error(net, content64, style64):
    content, style = to_tensor(content64), to_tensor(style64)
    with pytest.raises(costs.CostFunctionError, match="gram_matrix returned float"):
        StyleTransfer(content, style, small(), backbone=net,
                      cost_functions=costs.CostFunctions(gram_matrix=lambda a: 1.0))
    ref = costs.CostFunctions.reference()
    with pytest.raises(ValueError, match="one style image, not 2") as info:
        StyleTransfer(content, [style, style], small(), backbone=net,
                      cost_functions=costs.CostFunctions(layer_style_cost=ref.layer_style_cost))
    assert "2 张" in info.value.text("zh")


def test_a_schedule_is_resolved_once_and_read_as_it_is():
    """schedule() fills every default without a network; handed on, it is not resolved again."""
    sched = schedule(TransferConfig(size=64, scales=(32, 64), scale_steps=(0, 3), seed=2), 1)
    assert (sched.sizes, sched.scale_steps, sched.steps, sched.first) == ((32, 64), (0, 3), 3, 64)
    assert schedule(sched, 1) is sched
    assert sched.pyramid(64) == default_pyramid(64) and sched.config.lr == 1.0
    with pytest.raises(ValueError, match="style weights"):
        schedule(schedule(TransferConfig(style_weights=(1.0, 2.0))), 3)
    with pytest.raises(ValueError, match="scale_steps"):
        schedule(TransferConfig(size=64, scales=(32, 64), scale_steps=(1, 2, 3)))
    own = schedule(TransferConfig(size=None, scales=(32,), steps=6))  # the content's own size: known later
    assert own.sizes == () and own.steps == 6 and own.sized(80).sizes == (32, 80)
    with pytest.raises(ValueError, match="beyond"):
        own.sized(24)


def test_the_loop_drives_any_objective_and_parametrisation():
    """run_steps and Descent take another objective (here: the distance to a planted picture) over a
    pyramid parametrisation, without a network: the loop feature visualisation will reuse."""
    from teachkit.transfer import Descent, Pixels, run_steps

    target = torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(0))

    class Distance:
        names, weights = ["total"], None

        def __call__(self, img):
            j = (img - target).pow(2).sum()
            return j, j.detach().reshape(1)

    for optimizer, lr in (("lbfgs", 1.0), ("adam", 0.05)):
        d = Descent(Distance(), Pixels(torch.full((1, 3, 24, 32), 0.5), levels=2), optimizer=optimizer, lr=lr)
        seen = []
        records, reason = run_steps(d, 40, callback=seen.append, task="probe", preview_every=20)
        assert reason is None and [p.step for p in seen] == list(range(1, 41)) and seen[-1].image.size == (32, 24)
        assert records[-1]["total"] < records[0]["total"] / 20, (optimizer, records[0], records[-1])
        assert float((d.tensor() - target).abs().mean()) < 0.1


def test_a_fitted_run_takes_the_steps_that_fit_and_drops_the_finer_scale_first(net, content64, style64):
    """Each step made slow on purpose (0.1 s in the callback): 400 steps over two scales cannot fit into
    4 s, so the run keeps its first scale, takes about as many steps as fit and ends by itself."""
    import time

    cfg = small(size=64, steps=400, scales=(32, 64))
    result = transfer(content64, [style64], cfg, backbone=net, time_limit=4, fit=True,
                      callback=lambda p: time.sleep(0.1))
    assert not result.stopped and result.stop_reason is None
    assert {r["scale"] for r in result.history} == {1} and max(result.image.size) == 32  # a smaller G
    assert 3 <= result.steps_done < result.steps_planned == 400
    assert result.steps_done * 0.1 <= 4  # no more steps than the limit holds
