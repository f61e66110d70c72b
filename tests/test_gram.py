"""Gram matrices for display: the formula against an explicit double sum, their properties, the
two-channel explainer, position blindness (real vgg19), the figures and the `teachkit gram` CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from teachkit import gram as g
from teachkit.cli import main
from teachkit.costs import gram_matrix, style_layer_cost
from teachkit.images import to_tensor
from teachkit.samples import sample_content
from teachkit.progress import Progress


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cat():
    return to_tensor(sample_content("chelsea", 64))  # (1, 3, 43, 64)


def _explicit_gram(a: torch.Tensor) -> torch.Tensor:
    """G_kk' = sum_i sum_j a_ijk a_ijk', written as the loop over positions (float64)."""
    n_C, n_H, n_W = a.shape
    a = a.double()
    G = torch.zeros(n_C, n_C, dtype=torch.float64)
    for i in range(n_H):
        for j in range(n_W):
            v = a[:, i, j]  # the n_C numbers at position (i, j)
            G += torch.outer(v, v)
    return G


def test_layer_gram_equals_explicit_double_sum(net):
    x = to_tensor(sample_content("coffee", 24))
    a = net.extract(x, ["relu1_1"])["relu1_1"][0]
    G = gram_matrix(g.layer_activation(net, x, "relu1_1"))
    assert G.shape == (64, 64)
    torch.testing.assert_close(G.double(), _explicit_gram(a), rtol=1e-5, atol=1e-3)


def test_gram_symmetric_and_positive_semidefinite(net, cat):
    for layer in ("relu2_1", "conv3_1"):  # conv: activations of both signs
        G = gram_matrix(g.layer_activation(net, cat, layer)).double()
        torch.testing.assert_close(G, G.T)
        eig = torch.linalg.eigvalsh(G)
        assert eig.min() >= -1e-6 * eig.max()


def test_normalized_gram_and_correlation_relations():
    torch.manual_seed(0)
    a = torch.randn(6, 5, 7) * torch.arange(1, 7).view(6, 1, 1) + torch.arange(6).view(6, 1, 1)
    G = gram_matrix(a)
    P = 5 * 7
    N = g.normalized_gram(G, (5, 7))
    torch.testing.assert_close(N, G / P)
    torch.testing.assert_close(g.normalized_gram(G, P), N)
    f = a.flatten(1).double()
    mu = f.mean(1)
    cov = (f - mu[:, None]) @ (f - mu[:, None]).T / P
    # the per-position Gram is the covariance plus the outer product of the means
    torch.testing.assert_close(N.double(), cov + torch.outer(mu, mu), rtol=1e-5, atol=1e-5)
    corr = g.channel_correlation(a)
    # correlation from the centred, normalised Gram: C_kk' / sqrt(C_kk C_k'k')
    Gc = g.normalized_gram(gram_matrix(a - a.mean(dim=(1, 2), keepdim=True)), P).double()
    d = Gc.diagonal().sqrt()
    torch.testing.assert_close(corr.double(), Gc / torch.outer(d, d), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(corr.diagonal(), torch.ones(6))
    torch.testing.assert_close(corr.double(), torch.from_numpy(np.corrcoef(f.numpy())), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError):
        g.normalized_gram(G, 0)


def test_channel_correlation_dead_channels_are_nan_free():
    a = torch.rand(4, 6, 6)
    a[1] = 0.0  # a dead ReLU
    a[3] = 2.5  # constant: zero variance too
    c = g.channel_correlation(a)
    assert torch.isfinite(c).all()
    torch.testing.assert_close(c.diagonal(), torch.ones(4))
    assert c[1, 0] == 0 and c[0, 1] == 0 and c[3, 2] == 0
    assert g.channel_correlation(a.unsqueeze(0)).shape == (4, 4)


def test_select_channels_keeps_the_most_energetic():
    energy = torch.tensor([1.0, 9.0, 3.0, 7.0, 0.0])
    corr = torch.eye(5)
    chosen = g.select_channels(energy, corr, 3)
    assert sorted(chosen) == [1, 2, 3]
    assert g.select_channels(energy, corr, 3, order="energy") == [1, 3, 2]
    assert g.select_channels(energy, corr, None, order="index") == [0, 1, 2, 3, 4]
    # clustering puts the two correlated channels next to each other
    c = torch.tensor([[1, 0, .9, 0], [0, 1, 0, .8], [.9, 0, 1, 0], [0, .8, 0, 1.]])
    order = g.cluster_order(c)
    pos = {ch: i for i, ch in enumerate(order)}
    assert abs(pos[0] - pos[2]) == 1 and abs(pos[1] - pos[3]) == 1


def test_pair_product_sums_to_gram_entry(net, cat):
    k, k2, corr_most = g.pick_pair(g.layer_activation(net, cat, "relu3_1"), "most")
    e = g.pair_explainer(net, cat, "relu3_1", k, k2)
    assert k != k2
    assert e["product_sum"] == pytest.approx(e["gram"], rel=1e-5)
    G = gram_matrix(g.layer_activation(net, cat, "relu3_1"))
    assert e["product_sum"] == pytest.approx(float(G[k, k2]), rel=1e-5)
    torch.testing.assert_close(e["product"], e["map_k"] * e["map_k2"])
    l, l2, corr_least = g.pick_pair(g.layer_activation(net, cat, "relu3_1"), "least")
    assert l != l2 and corr_least < 0 < corr_most and corr_most > 0.5
    with pytest.raises(ValueError, match="out of range"):
        g.pair_explainer(net, cat, "relu3_1", 0, 256)
    fig = g.pair_figure(net, cat, "relu3_1", explained=e)
    assert "G_kk'" in fig._suptitle.get_text()


def test_shuffle_tiles_moves_every_tile_and_keeps_pixels():
    x = torch.rand(1, 3, 34, 41)
    y = g.shuffle_tiles(x, 4, seed=3)
    assert y.shape == x.shape and not torch.equal(x, y)
    torch.testing.assert_close(y.flatten().sort().values, x.flatten().sort().values)
    assert torch.equal(y, g.shuffle_tiles(x, 4, seed=3))
    # leftover rows and columns (34 = 4*8 + 2, 41 = 4*10 + 1) stay in place
    assert torch.equal(y[..., 32:, :], x[..., 32:, :]) and torch.equal(y[..., :, 40:], x[..., :, 40:])
    th, tw = 8, 10
    tiles = [x[..., r * th:(r + 1) * th, c * tw:(c + 1) * tw] for r in range(4) for c in range(4)]
    for r in range(4):
        for c in range(4):
            t = y[..., r * th:(r + 1) * th, c * tw:(c + 1) * tw]
            matches = [i for i, s in enumerate(tiles) if torch.equal(s, t)]
            assert matches and matches[0] != r * 4 + c  # some other tile, never its own
    assert torch.equal(g.shuffle_tiles(x, 1), x)
    with pytest.raises(ValueError):
        g.shuffle_tiles(x, 0)
    with pytest.raises(ValueError):
        g.shuffle_tiles(x, 50)


def test_gram_is_blind_to_position_features_are_not(net, cat):
    r = g.position_blindness(net, cat)  # relu2_1 Gram vs relu4_2 features, 2x2 tiles
    assert r["gram_rel_diff"] < 0.2
    assert r["content_rel_diff"] > 0.7
    assert r["gram_rel_diff"] < 0.25 * r["content_rel_diff"]
    fig = g.position_blindness_figure(net, cat, result=r)
    assert f"{r['gram_rel_diff']:.3f}" in fig._suptitle.get_text()


def test_gram_comparison_reports_j_style_and_rescales(net, cat):
    S = to_tensor(sample_content("coffee", 64))[..., :40, :48]  # another size on purpose
    c = g.gram_comparison(net, S, cat, "relu2_1", n_channels=16)
    assert c["rescaled_S"] and len(c["channels"]) == 16
    a_S = net.extract(S, ["relu2_1"])["relu2_1"][0]
    a_G = net.extract(cat, ["relu2_1"])["relu2_1"][0]
    M_S, M_G = a_S.shape[1] * a_S.shape[2], a_G.shape[1] * a_G.shape[2]
    expected = style_layer_cost(gram_matrix(a_S) * (M_G / M_S), a_G)
    assert c["j_style"] == pytest.approx(float(expected), rel=1e-4)
    fig = g.gram_comparison_figure(net, S, cat, "relu2_1", comparison=c)
    assert isinstance(fig, Figure) and f"{c['j_style']:.4g}" in fig._suptitle.get_text()
    assert len(fig.axes) + sum(len(ax.child_axes) for ax in fig.axes) == 7  # heatmaps, their bars, how to read
    same = g.gram_comparison(net, cat, cat, "relu2_1", full=True)
    assert same["j_style"] == 0 and len(same["channels"]) == 128
    fig1 = g.gram_figure(net, cat, "relu1_1", n_channels=8)
    assert len(fig1.axes) + sum(len(ax.child_axes) for ax in fig1.axes) == 4


def test_one_j_style_for_heatmap_title_and_bars(net, cat):
    """style_layer_costs (the bar chart) and gram_comparison (the heatmap title) agree, and both
    equal the lecture formula written out here: 1/(2 n_H n_W n_C) * sum (G_S * M_G/M_S - G_G)^2."""
    S = to_tensor(sample_content("coffee", 80))  # 80 x 53: another size than the cat (64 x 43)
    layers = ["relu1_1", "relu3_1"]
    costs = g.style_layer_costs(net, S, cat, layers)
    assert list(costs) == layers
    for layer in layers:
        c = g.gram_comparison(net, S, cat, layer)
        assert c["rescaled_S"] and c["j_style"] == costs[layer]
        a_S = net.extract(S, [layer])[layer][0].double().flatten(1)
        a_G = net.extract(cat, [layer])[layer][0].double()
        n_C, n_H, n_W = a_G.shape
        a_G = a_G.flatten(1)
        target = (a_S @ a_S.T) * (a_G.shape[1] / a_S.shape[1])
        expected = float(((target - a_G @ a_G.T) ** 2).sum()) / (2 * n_H * n_W * n_C)
        assert costs[layer] == pytest.approx(expected, rel=1e-4)
    same = g.style_layer_costs(net, cat, cat, ["relu2_1"], normalization="gatys")
    assert same == {"relu2_1": 0.0}
    with pytest.raises(ValueError, match="normalization"):
        g.style_layer_costs(net, S, cat, layers, normalization="slides")
    with pytest.raises(ValueError, match="relu9_9"):
        g.style_layer_costs(net, S, cat, ["relu9_9"])


def test_comparison_heatmaps_show_structure_on_their_own_scales(net, cat):
    """G(S) of a painting and G(G) of a photo differ in size by orders of magnitude: each top panel
    shows G_kk' / sqrt(G_kk G_k'k') (checked against that formula), the difference its own
    symmetric scale."""
    from teachkit.samples import sample_style

    S = to_tensor(sample_style("stained_glass", 64))
    c = g.gram_comparison(net, S, cat, "relu2_1", n_channels=16)
    fig = g.gram_comparison_figure(net, S, cat, "relu2_1", comparison=c)
    ch = c["channels"]
    heat = [ax.images[0] for ax in fig.axes if ax.images][:3]
    for im, G in zip(heat[:2], (c["gram_S"], c["gram_G"])):
        G = G.double()[ch][:, ch]
        d = G.diagonal().sqrt()
        expected = torch.where(torch.outer(d, d) > 0, G / torch.outer(d, d), torch.zeros_like(G))
        np.testing.assert_allclose(np.asarray(im.get_array()), expected.numpy(), rtol=1e-6, atol=1e-9)
        assert im.norm.vmin == 0 and im.norm.vmax == 1
    D = (c["gram_S"] - c["gram_G"]).double()[ch][:, ch].numpy()
    assert heat[2].norm.vmax == pytest.approx(np.abs(D).max()) and heat[2].norm.vmin == -heat[2].norm.vmax
    # on one shared scale the photo's matrix would be nearly black: that is what this avoids
    assert float(c["gram_G"].max()) < 0.2 * float(c["gram_S"].max())


def _text_px(fig):
    """The height in pixels of every visible, non-empty text of ``fig`` shown SHOWN_PX wide."""
    fig.canvas.draw()
    px_per_pt = g.SHOWN_PX / (fig.get_figwidth() * 72.0)
    out = []
    for t in fig.findobj(lambda a: hasattr(a, "get_fontsize") and hasattr(a, "get_text")):
        if t.get_visible() and t.get_text().strip():
            out.append((t.get_fontsize() * px_per_pt, t.get_text()))
    return out


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_figure_text_is_large_and_in_the_language(net, cat, lang):
    S = to_tensor(sample_content("coffee", 48))
    figs = {
        "one": g.gram_figure(net, cat, "relu1_1", lang=lang),
        "cmp": g.gram_comparison_figure(net, S, cat, "relu2_1", lang=lang),
        "pair": g.pair_figure(net, cat, "relu2_1", lang=lang),
        "blind": g.position_blindness_figure(net, cat, lang=lang),
        "bars": g.style_cost_bars_figure({"relu1_1": 3e4, "relu2_1": 2e6}, lang=lang),
        "bars_w": g.style_cost_bars_figure({"relu1_1": 3e4, "relu2_1": 2e6}, {"relu1_1": 1, "relu2_1": 0.5},
                                           lang=lang),
    }
    english = ("channel", "strongest", "positions", "image", "product", "forgets", "per layer", "How to read")
    for name, fig in figs.items():
        texts = _text_px(fig)
        assert texts, name
        small = [(round(px, 1), t) for px, t in texts if px < g.MIN_TEXT_PX - 1e-6]
        assert not small, f"{name}: text below {g.MIN_TEXT_PX} px: {small[:5]}"
        joined = " ".join(t for _px, t in texts)
        if lang == "zh":
            assert any("\u4e00" <= ch <= "\u9fff" for ch in joined), name
            assert not [w for w in english if w in joined], (name, joined[:200])
            from teachkit.figtext import CJK_FONT

            for t in fig.findobj(lambda a: hasattr(a, "get_fontproperties") and hasattr(a, "get_text")):
                if any("\u4e00" <= ch <= "\u9fff" for ch in t.get_text()):  # drawn with the Chinese font
                    assert CJK_FONT in t.get_fontproperties().get_family(), (name, t.get_text())


def test_style_cost_bars_accept_progress_values():
    values = {"total": 3.0, "content": 1.0, "style": 2.0, "style/relu1_1": 10.0, "style/relu2_1": 5000.0}
    assert g.style_values(values) == {"relu1_1": 10.0, "relu2_1": 5000.0}
    assert g.style_values(Progress("transfer", 1, 2, values)) == {"relu1_1": 10.0, "relu2_1": 5000.0}
    assert g.style_values({"relu3_1": 2}) == {"relu3_1": 2.0}
    fig = g.style_cost_bars_figure(values, weights={"relu1_1": 0.5, "relu2_1": 0.5})
    assert fig.axes[0].get_yscale() == "log"
    assert len(fig.axes[0].patches) == 4  # J_style[l] and lambda[l] J_style[l] for two layers
    with pytest.raises(ValueError):
        g.style_cost_bars_figure({"total": 1.0})


def test_cli_gram_writes_figures(tmp_path, capsys):
    one, two = tmp_path / "g1.png", tmp_path / "g2.png"
    assert main(["gram", "chelsea", "--size", "48", "--channels", "8", "-o", str(one)]) == 0
    assert main(["gram", "show", "stained_glass", "chelsea", "--size", "48", "--layer", "relu1_1",
                 "-o", str(two)]) == 0
    pair, shuf = tmp_path / "p.png", tmp_path / "s.png"
    assert main(["gram", "pair", "chelsea", "--size", "48", "--least", "-o", str(pair)]) == 0
    assert main(["gram", "pair", "chelsea", "--size", "48", "--channels", "3", "5", "-o", str(pair)]) == 0
    assert main(["gram", "shuffle", "chelsea", "--size", "48", "-o", str(shuf)]) == 0
    for p in (one, two, pair, shuf):
        assert p.read_bytes()[:4] == b"\x89PNG"
    out = capsys.readouterr().out
    assert "J_style[l](S, G)" in out and "relative change" in out


def test_cli_figures_speak_the_chosen_language(tmp_path, monkeypatch):
    """``--lang zh`` (after the sub-command too) gives Chinese figures, not only Chinese lines."""
    import re

    from teachkit import viz

    made, save = [], viz.save_figure

    def keep_words(fig, path):
        fig.draw_without_rendering()
        made.append(" ".join(t.get_text() for t in viz.drawn_texts(fig)))
        return save(fig, path)

    monkeypatch.setattr(viz, "save_figure", keep_words)
    for argv in (["gram", "chelsea"], ["gram", "show", "stained_glass", "chelsea", "--layer", "relu1_1"],
                 ["gram", "pair", "chelsea"], ["gram", "shuffle", "chelsea"],
                 ["reconstruct", "content", "chelsea", "--layers", "relu1_1", "--steps", "1"]):
        assert main(argv + ["--size", "32", "--lang", "zh", "-o", str(tmp_path / "f.png")]) == 0, argv
    assert len(made) == 5 and all(re.search(r"[\u4e00-\u9fff]", t) for t in made), made


@pytest.mark.parametrize(
    "argv",
    [
        ["gram", "no-such-image.png", "-o", "{tmp}/x.png"],
        ["gram", "chelsea", "--layer", "relu9_9", "-o", "{tmp}/x.png"],
        ["gram", "chelsea", "-o", "{tmp}/x.txt"],
        ["gram", "show", "chelsea", "coffee", "camera", "-o", "{tmp}/x.png"],
        ["gram", "pair", "chelsea", "--size", "32", "--channels", "0", "999", "-o", "{tmp}/x.png"],
        ["gram", "shuffle", "chelsea", "--tiles", "0", "-o", "{tmp}/x.png"],
        ["gram", "shuffle", "chelsea", "--size", "32", "--tiles", "40", "-o", "{tmp}/x.png"],
    ],
)
def test_cli_gram_bad_input_exits_2(tmp_path, capsys, argv):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("teachkit: error:") and err.count("\n") == 1
    assert not (tmp_path / "x.png").exists()


def test_cli_gram_usage_errors_exit_2():
    with pytest.raises(SystemExit) as exc:
        main(["gram", "pair", "chelsea", "--most", "--least", "-o", "x.png"])
    assert exc.value.code == 2


# the two far ends (the browser walks check the pages in all four): English at the page's text size, Chinese
# (wider glyphs) at the projector's
@pytest.mark.parametrize("lang, px", [("en", g.MIN_TEXT_PX), ("zh", 20)], ids=["en-normal", "zh-projector"])
def test_no_two_texts_of_any_figure_overlap(net, cat, lang, px):
    """Every figure at the page's and the projector's text size, and the slides' one-row layouts, in
    both languages: no title over a tick label, no colour-bar scale over a title (measured on the text
    extents of savefig's own drawing: teachkit.viz.figure_png)."""
    import io
    import json

    from PIL import Image

    from teachkit.viz import figure_png

    S = to_tensor(sample_content("coffee", 64))
    with g.text_size(px * g.SHOWN_PX / 1200):  # a slide shows a one-row figure 1200 px wide (lessons/slides_deck.py)
        figs = {"cmp_wide": g.gram_comparison_figure(net, S, cat, "relu3_1", lang=lang, wide=True),
                "pair_wide": g.pair_figure(net, cat, "relu3_1", lang=lang, wide=True)}
    with g.text_size(px):
        figs |= {
            "one": g.gram_figure(net, cat, "relu3_1", lang=lang),
            "cmp": g.gram_comparison_figure(net, S, cat, "relu3_1", lang=lang),
            "pair": g.pair_figure(net, cat, "relu3_1", lang=lang),
            "blind": g.position_blindness_figure(net, cat, tiles=4, lang=lang),
            "bars": g.style_cost_bars_figure({"relu1_1": 3e4, "relu2_1": 2e6, "relu3_1": 5e6, "relu4_1": 3e8,
                                              "relu5_1": 2e3}, {"relu1_1": 1, "relu2_1": 5e-3, "relu3_1": 2.5e-3,
                                                                "relu4_1": 2.5e-5, "relu5_1": 0.3}, lang=lang),
        }
        for name, fig in figs.items():
            info = Image.open(io.BytesIO(figure_png(fig, dpi=100))).info
            assert info["teachkit:overlaps"] == "0", (name, json.loads(info["teachkit:overlap"]))
