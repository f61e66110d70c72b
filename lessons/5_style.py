"""Lesson 5 -- style cost and the Gram matrix: two channels, heatmaps, lambda[l], textures, shuffled tiles."""

import streamlit as st

from lessons import _common as c
from lessons._common import tr

P = "5_style"
SIZE = c.l5_size()  # the images the Gram matrices are computed on
TEX_SIZE = c.demo_size(96, fast=32)  # texture synthesis
TEX_STEPS = c.demo_steps(40, fast=2)
LAYERS = c.L5_LAYERS
TEX_LIMIT = None if c.fast_mode() or not c.demo_seconds() else c.demo_seconds() / len(LAYERS)  # per texture

c.page_title(5)
c.md(P, "intro")

from teachkit.images import DEFAULT_STYLE  # noqa: E402

names = c.samples()
s1, s2 = st.columns(2)
style_name = s1.selectbox(tr("pick_style"), names["style"], index=names["style"].index(DEFAULT_STYLE),
                          key="p5_style")
layer = s2.selectbox(tr("p5_layer"), LAYERS, index=LAYERS.index(c.L5_LAYER), key="p5_layer")

# ---- two channels ----
c.md(P, "pair")
which = c.choice(st.radio, tr("p5_pair_which"), ["most", "least"], "p5_pair", default=c.L5_PAIR, horizontal=True,
                 labels=lambda w: tr(f"p5_pair_{w}"))
c.show_png(c.pair_png(style_name, layer, which, SIZE))

# ---- the Gram matrix of S and of G ----
c.md(P, "gram")
g_options = ["content", "noise", "style2"] + (["last"] if st.session_state.get("last_G") is not None else [])
g_kind = c.choice(st.radio, tr("p5_compare_with"), g_options, "p5_g", horizontal=True,
                  labels=lambda k: tr(f"p5_g_{k}"))
g_png = c.l5_g_png(g_kind, style_name)
c.md(P, "heatmaps")
c.show_png(c.comparison_png(style_name, g_png, layer, SIZE))

# ---- several layers, lambda[l] ----
c.md(P, "layers")
default_w = c.transfer_defaults()["layer_weights"]
cols = st.columns(len(LAYERS))
weights = {}
for col, l, w in zip(cols, LAYERS, default_w):  # lambda[l] spans orders of magnitude: powers of ten
    options = c.weight_options(w, decades=2)
    weights[l] = col.select_slider(tr("p5_lambda", layer=l), options, value=options[3], key=f"p5_lambda_{l}",
                                   format_func=c.fmt_weight)
values = c.style_layer_costs(style_name, g_png, SIZE)
total = sum(weights[l] * values[l] for l in LAYERS)
st.latex(r"J_{\text{style}}(S,G) = \sum_l \lambda^{[l]} J^{[l]}_{\text{style}}(S,G) = " + c.tex_num(total))
bars_col, _ = st.columns([2, 1])
with bars_col:
    from teachkit.gram import style_cost_bars_figure

    c.show_png(c.fig_png(style_cost_bars_figure(values, weights=weights), dpi=90))

# ---- texture synthesis, layer by layer ----
c.md(P, "texture")
tex_key = (style_name, TEX_SIZE, TEX_STEPS)
tex = st.session_state.get("p5_texture")
run_tex = st.button(tr("p5_texture_run"), type="primary", key="p5_texture_run", icon=":material/play_arrow:")
st.caption(tr("p5_texture_note", size=TEX_SIZE, steps=TEX_STEPS))
tex_slot = st.empty()
if run_tex:
    tex = st.session_state["p5_texture"] = c.texture_demo(style_name, TEX_SIZE, TEX_STEPS, LAYERS, tex_slot,
                                                                  TEX_LIMIT)
    st.session_state["p5_texture_key"] = tex_key
elif tex is not None and st.session_state.get("p5_texture_key") == tex_key:
    tex_slot.image(tex, width="stretch")
else:
    tex = None
if tex is not None:
    st.caption(tr("p5_texture_caption"))

# ---- shuffled tiles ----
c.md(P, "shuffle")
tiles = st.slider(tr("p5_tiles"), 2, 8, c.L5_TILES, key="p5_tiles")
left, _ = st.columns([3, 1])
with left:
    c.show_png(c.shuffle_png(style_name, tiles, SIZE))
