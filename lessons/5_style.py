"""Lesson 5 -- style cost and the Gram matrix: two channels, heatmaps, lambda[l], textures, shuffled tiles."""

import streamlit as st

from teachkit.features import DEFAULT_STYLE_LAYERS

from lessons import settings as cfg
from lessons import charts
from lessons import demos
from lessons import resources as res
from lessons.i18n import choice, md, page_title, tr

P = "5_style"
SIZE = res.l5_size()  # the images the Gram matrices are computed on
TEX_SIZE = cfg.demo_size(96, fast=32)  # texture synthesis
TEX_STEPS = cfg.demo_steps(40, fast=2)
LAYERS = list(DEFAULT_STYLE_LAYERS)
TEX_LIMIT = None if cfg.fast_mode() or not cfg.demo_seconds() else cfg.demo_seconds() / len(LAYERS)  # per texture

page_title(5)
md(P, "intro")

from teachkit.samples import DEFAULT_STYLE  # noqa: E402

names = res.samples()
s1, s2 = st.columns(2)
style_name = s1.selectbox(tr("pick_style"), names["style"], index=names["style"].index(DEFAULT_STYLE),
                          key="p5_style")
layer = s2.selectbox(tr("p5_layer"), LAYERS, index=LAYERS.index(res.L5_LAYER), key="p5_layer")

# ---- two channels ----
md(P, "pair")
which = choice(st.radio, tr("p5_pair_which"), ["most", "least"], "p5_pair", default=res.L5_PAIR, horizontal=True,
                 labels=lambda w: tr(f"p5_pair_{w}"))
res.show_png(res.pair_png(style_name, layer, which, SIZE))

# ---- the Gram matrix of S and of G ----
md(P, "gram")
g_options = ["content", "noise", "style2"] + (["last"] if st.session_state.get("last_G") is not None else [])
g_kind = choice(st.radio, tr("p5_compare_with"), g_options, "p5_g", horizontal=True,
                  labels=lambda k: tr(f"p5_g_{k}"))
g_png = res.l5_g_png(g_kind, style_name, st.session_state.get("last_G"))
md(P, "heatmaps")
res.show_png(res.comparison_png(style_name, g_png, layer, SIZE))

# ---- several layers, lambda[l] ----
md(P, "layers")
default_w = charts.transfer_defaults()["layer_weights"]
cols = st.columns(len(LAYERS))
weights = {}
for col, l, w in zip(cols, LAYERS, default_w):  # lambda[l] spans orders of magnitude: powers of ten
    options = charts.weight_options(w, decades=2)
    weights[l] = col.select_slider(tr("p5_lambda", layer=l), options, value=options[3], key=f"p5_lambda_{l}",
                                   format_func=charts.fmt_weight)
values = res.style_layer_costs(style_name, g_png, SIZE, tuple(LAYERS))
total = sum(weights[l] * values[l] for l in LAYERS)
st.latex(r"J_{\text{style}}(S,G) = \sum_l \lambda^{[l]} J^{[l]}_{\text{style}}(S,G) = " + charts.tex_num(total))
bars_col, _ = st.columns([2, 1])
with bars_col:
    from teachkit.gram import style_cost_bars_figure

    res.show_png(res.fig_png(style_cost_bars_figure(values, weights=weights), dpi=90))

# ---- texture synthesis, layer by layer ----
md(P, "texture")
tex_key = (style_name, TEX_SIZE, TEX_STEPS)
tex = st.session_state.get("p5_texture")
run_tex = st.button(tr("p5_texture_run"), type="primary", key="p5_texture_run", icon=":material/play_arrow:")
st.caption(tr("p5_texture_note", size=TEX_SIZE, steps=TEX_STEPS))
tex_slot = st.empty()
if run_tex:
    tex = st.session_state["p5_texture"] = demos.texture_demo(style_name, TEX_SIZE, TEX_STEPS, LAYERS, tex_slot,
                                                                  TEX_LIMIT)
    st.session_state["p5_texture_key"] = tex_key
elif tex is not None and st.session_state.get("p5_texture_key") == tex_key:
    tex_slot.image(tex, width="stretch")
else:
    tex = None
if tex is not None:
    st.caption(tr("p5_texture_caption"))

# ---- shuffled tiles ----
md(P, "shuffle")
tiles = st.slider(tr("p5_tiles"), 2, 8, res.L5_TILES, key="p5_tiles")
left, _ = st.columns([3, 1])
with left:
    res.show_png(res.shuffle_png(style_name, tiles, SIZE))
