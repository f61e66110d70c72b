"""The cost functions of teachkit.costs against the lecture's formulas, written out as plain loops.

Every expectation here is computed independently, element by element, from the formula in the
docstring -- never by calling another teachkit function.
"""

from __future__ import annotations


import pytest
import torch

from teachkit import costs

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny images: one thread is fastest (conftest)


def _rand(*shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g, dtype=dtype)


# ---- explicit loops ----------------------------------------------------------------------------


def loop_gram(a):
    """G_kk' = sum_i sum_j a_ijk a_ijk' with a given as (n_C, n_H, n_W)."""
    n_C, n_H, n_W = a.shape
    G = [[0.0] * n_C for _ in range(n_C)]
    for k in range(n_C):
        for kk in range(n_C):
            s = 0.0
            for i in range(n_H):
                for j in range(n_W):
                    s += float(a[k, i, j]) * float(a[kk, i, j])
            G[k][kk] = s
    return torch.tensor(G, dtype=torch.float64)


def loop_sum_sq(x, y):
    return sum((float(p) - float(q)) ** 2 for p, q in zip(x.flatten().tolist(), y.flatten().tolist()))


def loop_style_lecture(a_S, a_G):
    """1 / (2 n_H n_W n_C) * sum_k sum_k' (G_S - G_G)^2, activations given as (n_C, n_H, n_W)."""
    n_C, n_H, n_W = a_G.shape
    GS, GG = loop_gram(a_S), loop_gram(a_G)
    s = 0.0
    for k in range(n_C):
        for kk in range(n_C):
            s += (float(GS[k, kk]) - float(GG[k, kk])) ** 2
    return s / (2 * n_H * n_W * n_C)


def loop_tv(img):
    """sum over channels and pixels of (G[i+1,j]-G[i,j])^2 + (G[i,j+1]-G[i,j])^2."""
    c, h, w = img.shape[-3:]
    img = img.reshape(c, h, w)
    s = 0.0
    for ch in range(c):
        for i in range(h):
            for j in range(w):
                if i + 1 < h:
                    s += (float(img[ch, i + 1, j]) - float(img[ch, i, j])) ** 2
                if j + 1 < w:
                    s += (float(img[ch, i, j + 1]) - float(img[ch, i, j])) ** 2
    return s


# ---- Gram matrix -------------------------------------------------------------------------------


def test_gram_matrix_matches_loops_3d_and_4d():
    a = _rand(3, 4, 5)
    expected = loop_gram(a)
    assert torch.allclose(costs.gram_matrix(a), expected, rtol=1e-12, atol=1e-12)
    batch = torch.stack([a, _rand(3, 4, 5, seed=1)])
    got = costs.gram_matrix(batch)
    assert got.shape == (2, 3, 3)
    assert torch.allclose(got[0], expected, rtol=1e-12)
    assert torch.allclose(got[1], loop_gram(batch[1]), rtol=1e-12)


def test_gram_matrix_is_symmetric_and_float32_for_low_precision():
    a = _rand(4, 6, 6, dtype=torch.float32).to(torch.bfloat16)
    g = costs.gram_matrix(a)
    assert g.dtype == torch.float32
    assert torch.equal(g, g.T)


def test_gram_matrix_rejects_bad_shape():
    with pytest.raises(ValueError):
        costs.gram_matrix(torch.zeros(3, 4))


# ---- content cost ------------------------------------------------------------------------------


@pytest.mark.parametrize("norm,factor", [("lecture", 0.5), ("auto", 0.5), ("gatys", 0.5), ("none", 1.0)])
def test_content_cost_matches_loop(norm, factor):
    a_C, a_G = _rand(1, 3, 4, 5), _rand(1, 3, 4, 5, seed=1)
    expected = factor * loop_sum_sq(a_C, a_G)
    assert float(costs.content_cost(a_C, a_G, norm)) == pytest.approx(expected, rel=1e-12)


def test_content_cost_zero_for_equal_and_rejects_shape_mismatch():
    a = _rand(1, 2, 3, 3)
    assert float(costs.content_cost(a, a.clone())) == 0.0
    with pytest.raises(ValueError):
        costs.content_cost(a, _rand(1, 2, 3, 4))
    with pytest.raises(ValueError):
        costs.content_cost(a, a, "bogus")


# ---- style cost --------------------------------------------------------------------------------


def test_style_layer_cost_lecture_matches_loop():
    a_S, a_G = _rand(3, 4, 5), _rand(3, 4, 5, seed=2)
    expected = loop_style_lecture(a_S, a_G)
    got = costs.style_layer_cost(loop_gram(a_S), a_G.unsqueeze(0), "lecture")
    assert float(got) == pytest.approx(expected, rel=1e-10)


def test_style_layer_cost_other_normalizations_from_their_formulas():
    n_C, n_H, n_W = 3, 4, 5
    a_S, a_G = _rand(n_C, n_H, n_W, seed=3), _rand(n_C, n_H, n_W, seed=4)
    GS, GG = loop_gram(a_S), loop_gram(a_G)
    sq = sum((float(GS[k, kk]) - float(GG[k, kk])) ** 2 for k in range(n_C) for kk in range(n_C))
    gatys = sq / (4 * n_C**2 * (n_H * n_W) ** 2)
    none = sq
    assert float(costs.style_layer_cost(GS, a_G.unsqueeze(0), "gatys")) == pytest.approx(gatys, rel=1e-10)
    assert float(costs.style_layer_cost(GS, a_G.unsqueeze(0), "none")) == pytest.approx(none, rel=1e-10)


def test_normalizations_relate_as_documented():
    n_C, n_H, n_W = 4, 3, 5
    a_S, a_G = _rand(1, n_C, n_H, n_W, seed=5), _rand(1, n_C, n_H, n_W, seed=6)
    GS = loop_gram(a_S[0])
    lec = float(costs.style_layer_cost(GS, a_G, "lecture"))
    gat = float(costs.style_layer_cost(GS, a_G, "gatys"))
    non = float(costs.style_layer_cost(GS, a_G, "none"))
    assert gat == pytest.approx(lec / (2 * n_C * n_H * n_W), rel=1e-10)
    assert non == pytest.approx(lec * 2 * n_H * n_W * n_C, rel=1e-10)
    # style_factor states the constants themselves
    assert costs.style_factor(n_H, n_W, n_C, "lecture") == pytest.approx(1 / (2 * n_H * n_W * n_C))
    assert costs.style_factor(n_H, n_W, n_C, "gatys") == pytest.approx(1 / (4 * n_C**2 * (n_H * n_W) ** 2))
    assert costs.style_factor(n_H, n_W, n_C, "none") == 1.0
    assert costs.style_factor(n_H, n_W, n_C, "auto") == costs.style_factor(n_H, n_W, n_C, "lecture")


def test_style_cost_is_the_lambda_weighted_sum():
    layers = {"a": (2, 3, 3), "b": (3, 2, 4)}
    grams, feats, lam = {}, {}, {"a": 0.3, "b": 2.0}
    expected = 0.0
    per_layer = {}
    for i, (name, shape) in enumerate(layers.items()):
        a_S, a_G = _rand(*shape, seed=10 + i), _rand(*shape, seed=20 + i)
        grams[name], feats[name] = loop_gram(a_S), a_G.unsqueeze(0)
        per_layer[name] = loop_style_lecture(a_S, a_G)
        expected += lam[name] * per_layer[name]
    total, terms = costs.style_cost(grams, feats, lam)
    assert float(total) == pytest.approx(expected, rel=1e-10)
    for name in layers:
        assert float(terms[name]) == pytest.approx(per_layer[name], rel=1e-10)


def test_style_cost_zero_when_grams_match():
    a = _rand(1, 3, 4, 4, seed=7)
    assert float(costs.style_layer_cost(loop_gram(a[0]), a)) == pytest.approx(0.0, abs=1e-18)


# ---- total variation and total -----------------------------------------------------------------


def test_total_variation_matches_loop():
    img = _rand(1, 3, 5, 6, seed=8)
    assert float(costs.total_variation(img)) == pytest.approx(loop_tv(img), rel=1e-12)
    flat = torch.full((1, 3, 4, 4), 0.25, dtype=torch.float64)
    assert float(costs.total_variation(flat)) == 0.0


@pytest.mark.parametrize(
    "args,expected",
    [  # J = alpha J_content + beta J_style + w_tv TV, worked out by hand
        ((2.0, 3.0, 10.0, 100.0, 5.0, 0.1), 20.0 + 300.0 + 0.5),
        ((2.0, 3.0, 0.0, 1.0), 3.0),  # no TV term by default
        ((7.0, 0.0, 1.0, 1e6, 4.0, 0.0), 7.0),
    ],
)
def test_total_cost_formula(args, expected):
    assert float(costs.total_cost(*args)) == pytest.approx(expected, rel=1e-12)


def test_total_cost_gradient_is_the_weights():
    # dJ/dJ_content = alpha, dJ/dJ_style = beta, dJ/dTV = w_tv
    jc, js, tv = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (1.5, 2.5, 3.5))
    costs.total_cost(jc, js, 0.25, 4.0, tv, 8.0).backward()
    assert (float(jc.grad), float(js.grad), float(tv.grad)) == (0.25, 4.0, 8.0)


# ---- the auto normalisation ----------------------------------------------------------------------


def test_auto_weights_match_the_explicit_formula():
    # alpha_eff = alpha / (1/2 sum a_C^2); lambda_eff = w * 2 n_H n_W n_C / sum_kk' G_S^2; w_tv_eff = w_tv / numel
    a_C = _rand(1, 2, 3, 4, seed=30)
    a_S = {"x": _rand(2, 3, 3, seed=31), "y": _rand(3, 2, 2, seed=32)}
    G_S = {l: loop_gram(a) for l, a in a_S.items()}
    shapes = {"x": (2, 3, 3), "y": (3, 2, 2)}
    got = costs.auto_weights(a_C, G_S, shapes, (3, 7, 5), 2.0, {"x": 0.25, "y": 0.75}, 6.0)
    half_sq = 0.5 * sum(v * v for v in a_C.flatten().tolist())
    assert got["alpha"] == pytest.approx(2.0 / half_sq, rel=1e-12)
    for l, w in (("x", 0.25), ("y", 0.75)):
        n_C, n_H, n_W = shapes[l]
        size = sum(v * v for v in G_S[l].flatten().tolist())
        assert got["layer_weights"][l] == pytest.approx(w * 2 * n_H * n_W * n_C / size, rel=1e-12)
    assert got["tv_weight"] == pytest.approx(6.0 / (3 * 7 * 5))
    # what it is for: every weighted term is a relative error, 1 for an all-zero activation
    zero = {l: torch.zeros(1, *shapes[l], dtype=torch.float64) for l in shapes}
    for l in shapes:
        j0 = float(costs.style_layer_cost(G_S[l], zero[l], "auto"))
        assert got["layer_weights"][l] * j0 == pytest.approx({"x": 0.25, "y": 0.75}[l], rel=1e-12)
    assert got["alpha"] * float(costs.content_cost(a_C, torch.zeros_like(a_C), "auto")) == pytest.approx(2.0)


def test_auto_weights_against_the_content_photos_style():
    # with G(C) given: lambda_eff = w * 2 n_H n_W n_C / ||G(S) - G(C)||^2, floored at 1 % of ||G(S)||^2
    a_S, a_C = _rand(2, 3, 3, seed=34), _rand(2, 3, 3, seed=35)
    G_S, G_C = loop_gram(a_S), loop_gram(a_C)
    G_near = G_S * 1.001  # a content photo with (nearly) the style's own Gram matrix
    shapes = {"x": (2, 3, 3)}
    got = costs.auto_weights(None, {"x": G_S}, shapes, (3, 4, 4), 1.0, {"x": 0.5}, 0.0, style_reference={"x": G_C})
    far = sum((p - q) ** 2 for p, q in zip(G_S.flatten().tolist(), G_C.flatten().tolist()))
    assert got["layer_weights"]["x"] == pytest.approx(0.5 * 2 * 9 * 2 / far, rel=1e-12)
    near = costs.auto_weights(None, {"x": G_S}, shapes, (3, 4, 4), 1.0, {"x": 0.5}, 0.0, style_reference={"x": G_near})
    size = sum(v * v for v in G_S.flatten().tolist())
    assert near["layer_weights"]["x"] == pytest.approx(0.5 * 2 * 9 * 2 / (costs.REFERENCE_FLOOR * size), rel=1e-12)


def test_auto_weights_zero_weights_and_dead_targets():
    G = {"x": loop_gram(_rand(2, 2, 2, seed=33)), "dead": torch.zeros(2, 2, dtype=torch.float64)}
    shapes = {"x": (2, 2, 2), "dead": (2, 2, 2)}
    got = costs.auto_weights(None, G, shapes, (3, 4, 4), 1.0, {"x": 1.0, "dead": 0.0}, 0.0)
    assert got["alpha"] == 0.0 and got["layer_weights"]["dead"] == 0.0 and got["tv_weight"] == 0.0
    with pytest.raises(ValueError, match="dead"):
        costs.auto_weights(None, G, shapes, (3, 4, 4), 1.0, {"x": 1.0, "dead": 1.0}, 0.0)
    with pytest.raises(ValueError, match="content"):
        costs.auto_weights(torch.zeros(1, 2, 2, 2), G, shapes, (3, 4, 4), 1.0, {"x": 1.0}, 0.0)


# ---- gradients ---------------------------------------------------------------------------------


def test_gradcheck_gram_matrix():
    # gram_matrix has a hand-written backward ((dG + dG^T) F): check it against finite differences
    a3 = _rand(3, 2, 4, seed=18).requires_grad_(True)
    a4 = _rand(2, 3, 2, 3, seed=19).requires_grad_(True)
    assert torch.autograd.gradcheck(costs.gram_matrix, (a3,))
    assert torch.autograd.gradcheck(costs.gram_matrix, (a4,))


def test_gradcheck_content_cost():
    a_C = _rand(1, 2, 3, 4, seed=11)
    a_G = _rand(1, 2, 3, 4, seed=12).requires_grad_(True)
    for norm in ("lecture", "none"):
        assert torch.autograd.gradcheck(lambda x: costs.content_cost(a_C, x, norm), (a_G,))


def test_gradcheck_style_layer_cost():
    g_S = loop_gram(_rand(3, 3, 4, seed=13))
    a_G = _rand(1, 3, 3, 4, seed=14).requires_grad_(True)
    for norm in ("lecture", "gatys", "none"):
        assert torch.autograd.gradcheck(lambda x: costs.style_layer_cost(g_S, x, norm), (a_G,))


def test_gradcheck_total_variation():
    img = _rand(1, 3, 4, 5, seed=15).requires_grad_(True)
    assert torch.autograd.gradcheck(costs.total_variation, (img,))


def test_content_gradient_is_the_formula():
    # d/dA_G of 1/2 ||A_C - A_G||^2 = A_G - A_C
    a_C = _rand(1, 2, 3, 3, seed=16)
    a_G = _rand(1, 2, 3, 3, seed=17).requires_grad_(True)
    costs.content_cost(a_C, a_G).backward()
    assert torch.allclose(a_G.grad, a_G.detach() - a_C, atol=1e-12)


def test_style_target_scales_by_positions():
    G = torch.arange(9.0).view(3, 3)
    torch.testing.assert_close(costs.style_target(G, 40, 10), G / 4)
    assert costs.style_target(G, 7, 7) is G
    with pytest.raises(ValueError, match="M_S=0"):
        costs.style_target(G, 0, 5)


def test_weighted_record_is_what_each_term_adds_to_j():
    w = {"alpha": 2.0, "beta": 3.0, "tv_weight": 0.5, "layer_weights": {"relu1_1": 0.25, "relu2_1": 0.0}}
    rec = {"step": 4, "content": 1.5, "style": 2.0, "tv": 8.0, "total": 13.0, "style/relu1_1": 8.0,
           "style/relu2_1": float("nan")}
    got = costs.weighted_record(rec, w)
    assert got == {"step": 4, "content": 3.0, "style": 6.0, "tv": 4.0, "total": 13.0, "style/relu1_1": 6.0,
                   "style/relu2_1": 0.0}  # a weight of 0 adds 0, even where the term was not computed
    assert got["content"] + got["style"] + got["tv"] == rec["total"]
