"""Lesson 2 -- what is neural style transfer?  C, S and G side by side, and a small live transfer."""

import streamlit as st

from lessons import settings as cfg
from lessons import jobs
from lessons import resources as res
from lessons.i18n import md, page_title, tr

P = "2_style_transfer"
SIZE = cfg.demo_size(128)
STEPS = cfg.demo_steps(40)

page_title(2)
md(P, "intro")
md(P, "demo")

pick_c, pick_s, run_col = st.columns([1, 1, 1], vertical_alignment="bottom")
names = res.samples()
with pick_c:
    content_name = st.selectbox(tr("pick_content"), names["content"], key="p2_content")
with pick_s:
    style_name = st.selectbox(tr("pick_style"), names["style"], key="p2_style")
with run_col:
    run = st.button(tr("p2_run"), type="primary", key="p2_run", icon=":material/play_arrow:", width="stretch")
    st.caption(tr("p2_note", size=SIZE, steps=STEPS))

col_c, col_s, col_g = st.columns(3)
with col_c:
    st.subheader(tr("content_C"))
    res.show_image(res.sample(content_name, 384))
with col_s:
    st.subheader(tr("style_S"))
    res.show_image(res.sample(style_name, 384))
with col_g:
    st.subheader(tr("generated_G"))
    g_slot = st.empty()
    progress_slot = st.container()

pair = (content_name, style_name, SIZE, STEPS)
if run:
    from teachkit.transfer import TransferConfig, transfer

    net = res.backbone()
    g_slot.image(res.noise_image(*res.sample(content_name, SIZE).size), caption=tr("noise_G"), width="stretch")
    with progress_slot:
        with jobs.slot_on_page():
            view = jobs.LiveView("lesson2", image_slot=g_slot, time_limit=cfg.demo_seconds())
            config = TransferConfig(size=SIZE, steps=STEPS, init="noise", preview_every=1, seed=0)
            res = transfer(res.sample(content_name), res.sample(style_name, SIZE), config, callback=view, backbone=net)
            view.done()
    st.session_state["p2_result"] = {"pair": pair, "image": res.image, "seconds": res.seconds,
                                     "steps": len(res.history), "limit": view.hit_limit}
    st.session_state["last_G"] = res.image

result = st.session_state.get("p2_result")
if result is not None and result["pair"] == pair:
    g_slot.image(result["image"], width="stretch")
    progress_slot.caption(tr("finished_in", secs=result["seconds"], steps=result["steps"], size=SIZE))
    if result["limit"]:
        progress_slot.caption(tr("time_limit", secs=cfg.demo_seconds()))
else:
    result = None
    g_slot.image(res.noise_image(*res.sample(content_name, SIZE).size), caption=tr("noise_G"), width="stretch")

st.divider()
md(P, "how")
if result is not None:
    md(P, "after")
