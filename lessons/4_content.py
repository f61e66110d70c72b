"""Lesson 4 -- the content cost: choose the layer l, rebuild C from it, shallow vs middle vs deep."""

import streamlit as st

from lessons import settings as cfg
from lessons import jobs
from lessons import resources as res
from lessons.i18n import md, page_title, tr

P = "4_content"
SIZE = cfg.demo_size(128, fast=32)
STEPS = cfg.demo_steps(100, fast=2)
LIMIT = None if cfg.fast_mode() else cfg.demo_seconds()  # every demo of this page ends within 30 s
LAYERS = ["conv1_2", "conv2_2", "conv3_2", "conv4_2", "conv5_2"]
GRID = {"p4_shallow": "conv1_2", "p4_middle": "conv4_2", "p4_deep": "conv5_2"}

page_title(4)
md(P, "intro")

from teachkit.samples import DEFAULT_CONTENT  # noqa: E402

names = res.samples()
s1, s2, s3 = st.columns([1, 1, 1], vertical_alignment="bottom")
content_name = s1.selectbox(tr("pick_content"), names["content"], index=names["content"].index(DEFAULT_CONTENT),
                            key="p4_content")
layer = s2.selectbox(tr("p4_layer"), LAYERS, index=LAYERS.index("conv4_2"), key="p4_layer")
run = s3.button(tr("p4_run"), type="primary", key="p4_run", icon=":material/play_arrow:", width="stretch")

md(P, "experiment")
col_c, col_g, col_m = st.columns([1, 1, 0.8])
with col_c:
    st.subheader(tr("content_C"))
    res.show_image(res.sample(content_name, SIZE))
with col_g:
    st.subheader(tr("p4_recon", layer=layer))
    g_slot = st.empty()
    progress_slot = st.container()
with col_m:
    st.subheader(tr("p4_distance"))
    metrics = st.container()

net = res.backbone()
settings = (content_name, layer, SIZE, STEPS)
result = st.session_state.get("p4_result")
if run:
    from teachkit.reconstruct import reconstruct_content

    with progress_slot:
        with jobs.slot_on_page():
            view = jobs.LiveView("lesson4", image_slot=g_slot, show_values=("distance",))
            res = reconstruct_content(net, res.sample(content_name), layer, size=SIZE, steps=STEPS, callback=view,
                                      image_every=1, time_limit=LIMIT)
            view.done()
    result = st.session_state["p4_result"] = {"settings": settings, "image": res.image, "distance": res.distance,
                                              "content": res.final.get("content"), "steps": res.steps,
                                              "seconds": res.seconds}
if result is not None and result["settings"] == settings:
    g_slot.image(result["image"], width="stretch")
    progress_slot.caption(tr("finished_in", secs=result["seconds"], steps=result["steps"], size=SIZE))
    metrics.metric(tr("p4_pixel_rms"), f"{result['distance']:.3f}")
    metrics.metric(tr("p4_content_cost", layer=layer), f"{result['content']:.3g}")
else:
    g_slot.image(res.noise_image(*res.sample(content_name, SIZE).size), caption=tr("noise_G"), width="stretch")
md(P, "distance")

# ---- shallow vs middle vs deep ----
st.divider()
md(P, "why_middle")
grid_run = st.button(tr("p4_grid"), key="p4_grid", icon=":material/play_arrow:")
grid_slot = st.empty()
grid_settings = (content_name, SIZE, STEPS)
grid = st.session_state.get("p4_grid_result")
if grid_run:
    from teachkit.reconstruct import content_reconstruction_grid

    with jobs.slot_on_page():
        view = jobs.LiveView("lesson4_grid", image_slot=grid_slot, image_width=240, show_values=("distance",))
        fig = content_reconstruction_grid(net, res.sample(content_name), list(GRID.values()), size=SIZE, steps=STEPS,
                                          callback=view, image_every=1,
                                          time_limit=None if LIMIT is None else LIMIT / len(GRID))
        view.done()
    grid = st.session_state["p4_grid_result"] = {"settings": grid_settings, "png": res.fig_png(fig)}
if grid is not None and grid["settings"] == grid_settings:
    grid_slot.image(grid["png"], width="stretch")
    st.caption(" · ".join(f"{tr(k)}: {v}" for k, v in GRID.items()))
