"""Lesson 2 -- what is neural style transfer?  A finished transfer from the gallery, then one run live."""

import streamlit as st

from teachkit.lessons import exercise_offer, guide, jobs
from teachkit.lessons import resources as res
from teachkit.lessons import settings as cfg
from teachkit.lessons.i18n import choice, lang, md, page_title, tr
from teachkit.prepare import GALLERY
from teachkit.transfer import TransferConfig, schedule

P = "2_style_transfer"
FAST = cfg.fast_mode()
SIZE = cfg.demo_size(256, fast=32)


def live_config() -> TransferConfig:
    """The engine's classroom preset; tiny under TEACHKIT_FAST or with TEACHKIT_DEMO_SIZE/STEPS."""
    steps = cfg.demo_steps(0, fast=2)
    if FAST or SIZE != 256 or steps:
        return TransferConfig.preset("quick", size=SIZE, steps=steps or 60, scales=None, scale_steps=None,
                                     preview_every=1, seed=0)
    return TransferConfig.preset("quick", preview_every=2, seed=0)


page_title(2)
guide.teacher_note(P)
md(P, "intro")

# ---- a finished transfer, at once (teachkit prepare) ----
st.subheader(tr("p2_gallery"))
pairs = [p for p in GALLERY if res.prepared("gallery", *p) is not None]
if not pairs:
    st.info(tr("not_prepared"))
else:
    pair = choice(st.radio, tr("p2_pick_example"), pairs, "p2_example", horizontal=True,
                  labels=lambda p: f"{res.sample_label(p[0])} + {res.sample_label(p[1])}")
    item = res.prepared("gallery", *pair)
    frames = list(range(len(item.images)))
    col_c, col_s, col_g = st.columns(3)
    with col_c:
        res.show_image(res.sample(pair[0], 384), caption=tr("content_C"))
    with col_s:
        res.show_image(res.sample(pair[1], 384), caption=tr("style_S"))
    with col_g:
        shown = st.select_slider(tr("p2_frame"), frames, value=frames[-1], key=f"p2_frame_{pair[0]}_{pair[1]}_{lang()}",
                                 format_func=lambda i: tr("p2_step", n=item.labels[i]))
        caption = tr("p2_start_caption") if shown == 0 else tr("p3_step_n", n=item.labels[shown])
        res.show_image(item.images[shown], caption=caption)
    st.caption(tr("p2_prepared_note", steps=item.meta["steps"], secs=item.meta["seconds"], size=item.meta["size"]))
    guide.look(P, "gallery")

md(P, "how")

# ---- run one live ----
st.divider()
st.subheader(tr("p2_live"))
md(P, "demo")
plan = schedule(live_config())  # resolved once: the note, the start image and the run read it
config = plan.config
pick_c, pick_s, run_col = st.columns([1, 1, 1], vertical_alignment="top")
with pick_c:
    content_key, content_label = res.picker("content", "p2_content")
with pick_s:
    style_key, style_label = res.picker("style", "p2_style")
with run_col:
    run = st.button(tr("p2_run"), type="primary", key="p2_run", icon=":material/play_arrow:", width="stretch")
    st.caption(tr("p2_note", size=config.size, steps=plan.steps))

col_c, col_s, col_g = st.columns(3)
with col_c:
    res.show_image(res.picture(content_key, 384), caption=f"{tr('content_C')}: {content_label}")
with col_s:
    res.show_image(res.picture(style_key, 384), caption=f"{tr('style_S')}: {style_label}")
with col_g:
    g_slot = st.empty()
    progress_slot = st.container()

start = res.real_start(content_key, config.size, plan)  # G0 at the engine's first scale
settings = (content_key, style_key, repr(config))
if run:
    from teachkit.transfer import transfer

    from teachkit.lessons.together import shared_run

    g_slot.image(start, caption=tr("noise_G"), width="stretch")
    with progress_slot:
        # the same demo pressed by several students at once is computed once, and watched by the others
        view = jobs.LiveView("lesson2", image_slot=g_slot)
        result = shared_run(("lesson2", *settings, res.backbone().name, cfg.demo_seconds()), {"G": view},
                            lambda cb: transfer(res.picture(content_key), [res.picture(style_key, config.size)],
                                                plan, callback=cb["G"], backbone=res.backbone(),
                                                time_limit=jobs.demo_limit(cfg.demo_seconds())))
        view.done()
    st.session_state["p2_result"] = {"settings": settings, "image": result.image, "seconds": result.seconds,
                                     "steps": len(result.history), "limit": result.stopped,
                                     "optimizer": config.optimizer}
    st.session_state["last_G"] = result.image

result = st.session_state.get("p2_result")
if result is not None and result["settings"] == settings:
    g_slot.image(result["image"], caption=tr("generated_G"), width="stretch")
    progress_slot.caption(guide.run_summary(result["steps"], plan.steps, result["seconds"], config.size,
                                            result["limit"]))
    if result["limit"] and cfg.demo_seconds():
        progress_slot.caption(tr("time_limit", secs=cfg.demo_seconds()))
    guide.look(P, "live")
else:
    g_slot.image(start, caption=tr("noise_G"), width="stretch")

guide.questions(P)
exercise_offer.show(P)  # this lesson's notebook to download (student code runs on the student's computer only)
