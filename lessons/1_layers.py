"""Lesson 1 -- what do deep layers see?  A unit's top patches, then layers 1-5 side by side."""

import streamlit as st

from lessons import _common as c
from lessons._common import tr

P = "1_layers"
c.page_title(1)
c.md(P, "intro")

# ---- which dataset (a teacher may point at a folder) ----
with st.expander(tr("p1_dataset")):
    c.md(P, "folder_help")
    folder = st.text_input(tr("p1_folder"), key="p1_folder", placeholder="/home/teacher/Pictures").strip()
spec = folder or c.atlas_default_dataset()

builder = c.atlas_builder(spec)
if not builder.done.wait(0.3):
    c.md(P, "scan_note")
    bar = st.progress(0.0, text=tr("p1_scan_wait"))
    while not builder.done.wait(0.4):
        if builder.total:
            bar.progress(builder.step / builder.total,
                         text=tr("p1_scanning", name=spec, done=builder.step, total=builder.total))
    bar.empty()
if builder.error:
    st.error(tr("p1_dataset_bad", err=builder.error))
    if st.button(tr("p1_retry")):
        c.forget_atlas_builder(spec)
        st.rerun()
    st.stop()

atlas = builder.atlas
m = atlas.meta
st.caption(tr("p1_atlas_info", n=m["n_images"], name=m["dataset_name"], size=m["image_size"], k=m["k"]))


# ---- one unit ----
layers = atlas.layers
col_layer, col_how, col_unit = st.columns([1, 1.3, 1])
layer = col_layer.selectbox(tr("p1_layer"), layers, index=layers.index(c.L1_LAYER) if c.L1_LAYER in layers else 0,
                            key="p1_layer",
                            format_func=lambda name: f"{layers.index(name) + 1} · {name}")
with col_how:
    how = c.choice(st.radio, tr("p1_how"), ["most_active", "most_varied", "index"], "p1_how",
                   default=c.L1_HOW, horizontal=True, labels=lambda h: tr(f"how_{h}"))
n_channels = atlas.channels(layer)
if how == "index":
    unit = int(col_unit.number_input(tr("p1_unit_index", max=n_channels - 1), 0, n_channels - 1, 0, key="p1_index"))
else:
    choices = c.units(atlas, layer, how)
    unit = col_unit.selectbox(tr("p1_unit"), choices, key=f"p1_unit_{layer}_{how}", format_func=lambda u: f"#{u}")
c.md(P, "pick")

left, right = st.columns([1, 1.25])
with left:
    st.subheader(tr("p1_patches"))
    c.show_png(c.unit_png(atlas, layer, unit))
with right:
    st.subheader(tr("p1_where"))
    n_hits = max(1, len(atlas.top(layer, unit)))
    rank = st.select_slider(tr("p1_rank"), options=list(range(1, n_hits + 1)), value=1, key=f"p1_rank_{layer}_{unit}")
    try:
        c.show_png(c.where_png(atlas, layer, unit, rank - 1))
    except ValueError as err:  # e.g. a unit that never fired
        st.info(str(err))
st.caption(c.text(P, "unit_caption"))

# ---- all layers ----
st.divider()
c.md(P, "overview")
c.show_png(c.overview_png(atlas))
c.md(P, "takeaway")
