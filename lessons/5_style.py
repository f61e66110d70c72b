"""Lesson 5 -- style cost and the Gram matrix: two channels (and what they detect), heatmaps, lambda[l],
textures, shuffled tiles."""

import streamlit as st

from teachkit.lessons import charts, demos, exercise_offer, guide, jobs
from teachkit.lessons import resources as res
from teachkit.lessons import settings as cfg
from teachkit.lessons.i18n import choice, lang, md, page_title, tr
from teachkit.features import DEFAULT_STYLE_LAYERS
from teachkit.samples import DEFAULT_STYLE

P = "5_style"
SIZE = res.l5_size()  # the images the Gram matrices are computed on
# texture synthesis, live: 5 textures sized to end within the time limit on a 2-core AVX2 laptop
TEX_SIZE = cfg.demo_size(80, fast=32)
TEX_STEPS = cfg.demo_steps(30, fast=2)
LAYERS = list(DEFAULT_STYLE_LAYERS)
TEX_LIMIT = None if not cfg.demo_seconds() else cfg.demo_seconds() / len(LAYERS)  # each texture its share
LANG, PX = lang(), guide.text_px()  # PX: the figures' smallest text (projector: larger)

page_title(5)
guide.teacher_note(P)
md(P, "intro")

s1, s2 = st.columns(2)
with s1:
    style_key, style_label = res.picker("style", "p5_style", DEFAULT_STYLE)
layer = s2.selectbox(tr("p5_layer"), LAYERS, index=LAYERS.index(res.L5_LAYER), key="p5_layer")

# ---- two channels, and what they detect (lesson 1's atlas) ----
md(P, "pair")
builder = jobs.atlas_builder(st.session_state.get("atlas_spec", cfg.atlas_default_dataset()), res.backbone(),
                             DEFAULT_STYLE_LAYERS)


@st.fragment
def two_channels() -> None:
    """The pair: picked for the student (fire together / avoid each other) or chosen freely (k, k')."""
    c1, c2, c3 = st.columns([2, 1, 1], vertical_alignment="bottom")
    with c1:
        which = choice(st.radio, tr("p5_pair_which"), ["most", "least", "own"], "p5_pair", default=res.L5_PAIR,
                       horizontal=True, labels=lambda w: tr(f"p5_pair_{w}"))
    k, k2, _ = res.l5_pair(style_key, layer, "most" if which == "own" else which, SIZE)
    if which == "own":
        top = res.layer_channels(layer) - 1
        k = int(c2.number_input(tr("p5_pick_k"), 0, top, min(k, top), key=f"p5_k_{layer}"))
        k2 = int(c3.number_input(tr("p5_pick_k2"), 0, top, min(k2, top), key=f"p5_k2_{layer}"))
    res.show_png(res.pair_png_kk(style_key, layer, k, k2, SIZE, LANG, PX))
    guide.look(P, "pair")
    st.markdown(f"**{tr('p5_detect', k=k, k2=k2, layer=layer)}**")
    waiting = not builder.done.is_set()
    st.fragment(run_every=2.0 if waiting else None)(channel_patches)(waiting, k, k2)


def channel_patches(waiting: bool, k: int, k2: int) -> None:
    """k's and k''s top patches from lesson 1's atlas; while the atlas is made, look again every 2 s."""
    if builder.done.is_set() and builder.atlas is not None and layer in builder.atlas.layers:
        if waiting:
            st.rerun()  # ready now: draw the page again (and stop polling)
        c1, c2 = st.columns(2)
        for col, unit in ((c1, k), (c2, k2)):
            with col:
                res.show_png(res.unit_png(builder.atlas, layer, unit, LANG, guide.text_px()))
        guide.look(P, "detect")
    elif builder.done.is_set():
        st.info(tr("p5_atlas_missing"))
    else:
        st.info(tr("p5_atlas_wait"))


two_channels()

# ---- the Gram matrix of S and of G ----
md(P, "gram")
g_options = ["content", "noise", "style2"] + (["last"] if st.session_state.get("last_G") is not None else [])
g_kind = choice(st.radio, tr("p5_compare_with"), g_options, "p5_g", horizontal=True,
                labels=lambda kind: tr(f"p5_g_{kind}"))
g_png = res.l5_g_png(g_kind, style_key, st.session_state.get("last_G"))
md(P, "heatmaps")
res.show_png(res.comparison_png(style_key, g_png, layer, SIZE, LANG, PX))
guide.look(P, "heatmaps")
md(P, "constants")

# ---- several layers, lambda[l] ----
md(P, "layers")
default_w = charts.transfer_defaults()["layer_weights"]
cols = st.columns(len(LAYERS))
weights = {}
for col, name, w in zip(cols, LAYERS, default_w):  # lambda[l] spans orders of magnitude: powers of ten
    options = charts.weight_options(w, decades=res.L5_DECADES)
    weights[name] = col.select_slider(tr("p5_lambda", layer=name), options, value=options[res.L5_DECADES + 1],
                                      key=f"p5_lambda_{name}", format_func=charts.fmt_weight)
values = res.style_layer_costs(style_key, g_png, SIZE, tuple(LAYERS))
total = sum(weights[name] * values[name] for name in LAYERS)
st.latex(r"J_{\text{style}}(S,G) = \sum_l \lambda^{[l]} J^{[l]}_{\text{style}}(S,G) = " + charts.tex_num(total))
res.show_png(res.bars_png(tuple(values.items()), tuple(weights.items()), LANG, PX))
guide.look(P, "bars")

# ---- texture synthesis, layer by layer: the prepared row stays; a live run gets its own row ----
md(P, "texture")
item = res.prepared("texture", style_key) if not style_key.startswith("upload:") else None
if item is not None:
    cols = st.columns(len(item.images) + 1)
    cols[0].image(res.picture(style_key, 256), caption=tr("style_S"), width="stretch")
    for col, img, name in zip(cols[1:], item.images, item.labels):
        col.image(img, caption=tr("p5_up_to", layer=name), width="stretch")
    st.caption(tr("p5_texture_prepared", size=item.meta["size"], steps=item.meta["steps"]))
    guide.look(P, "texture")
else:
    st.info(tr("not_prepared"))
run_tex = st.button(tr("p5_texture_run"), key="p5_texture_run", icon=":material/play_arrow:")
st.caption(tr("p5_texture_note", size=TEX_SIZE, steps=TEX_STEPS))
tex_key = (style_key, TEX_SIZE, TEX_STEPS)
live_slot = st.empty()
if run_tex:
    st.session_state["p5_texture"] = demos.texture_demo(style_key, TEX_SIZE, TEX_STEPS, LAYERS, live_slot, TEX_LIMIT)
    st.session_state["p5_texture_key"] = tex_key
tex = st.session_state.get("p5_texture") if st.session_state.get("p5_texture_key") == tex_key else None
if tex is not None:
    with live_slot.container():
        st.markdown(f"**{tr('p5_texture_live')}**")
        cols = st.columns(len(tex["images"]))
        for i, col in enumerate(cols):
            col.image(tex["images"][i], caption=tr("p5_up_to", layer=tex["labels"][i]), width="stretch")
            col.caption(guide.run_summary(tex["steps"][i], TEX_STEPS, tex["seconds"][i], TEX_SIZE, tex["stopped"][i]))

# ---- shuffled tiles ----
md(P, "shuffle")
tiles = st.slider(tr("p5_tiles"), 2, 8, res.L5_TILES, key="p5_tiles")
res.show_png(res.shuffle_png(style_key, tiles, SIZE, LANG, PX))
guide.look(P, "shuffle")

guide.questions(P)
exercise_offer.show(P)  # this lesson's notebook to download (student code runs on the student's computer only)
