"""Lesson 2 -- what is neural style transfer?  A finished transfer from the gallery, then one run live."""

import time

import streamlit as st

from teachkit.lessons import exercise_offer, guide, jobs
from teachkit.lessons import resources as res
from teachkit.lessons import settings as cfg
from teachkit.lessons.i18n import choice, lang, md, page_title, tr
from teachkit.prepare import GALLERY
from teachkit.transfer import TransferConfig, schedule

STARTED = time.perf_counter()  # a press of Run starts this script: its time counts against the limit
P = "2_style_transfer"
FAST = cfg.fast_mode()
SIZE = cfg.demo_size(256, fast=32)
LIMIT = cfg.demo_seconds()  # the run is fitted to it, set-up included (teachkit.transfer.Engine.run)


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
    note = tr("p2_note", size=config.size, steps=plan.steps)
    st.caption(f"{note} {tr('time_limit', secs=LIMIT)}" if LIMIT else note)

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
    spent = time.perf_counter() - STARTED  # the page before the run (a wait for a free slot comes after)
    with progress_slot:
        # the same demo pressed by several students at once is computed once, and watched by the others
        view = jobs.LiveView("lesson2", image_slot=g_slot)
        result = shared_run(("lesson2", *settings, res.backbone().name, LIMIT), {"G": view},
                            lambda cb: transfer(res.picture(content_key), [res.picture(style_key, config.size)],
                                                plan, callback=cb["G"], backbone=res.backbone(), fit=True,
                                                time_limit=None if LIMIT is None else jobs.demo_limit(LIMIT) - spent))
        view.done()
    st.session_state["p2_result"] = {"settings": settings, "image": result.image, "seconds": result.seconds + spent,
                                     "steps": len(result.history), "cut": result.time_limited,
                                     "limit": None if LIMIT is None else result.time_limit + spent}
    st.session_state["last_G"] = result.image

result = st.session_state.get("p2_result")
if result is not None and result["settings"] == settings:
    done = result["steps"]
    # a run the busy computer cut, or sized to under a quarter of its steps: the prepared one, if there is one
    ready = res.prepared("gallery", content_key, style_key) if result["cut"] or 4 * done < plan.steps else None
    g_slot.image(ready.final if ready else result["image"], caption=tr("generated_G"), width="stretch")
    progress_slot.caption(tr("p2_busy_prepared", limit=result["limit"], done=done, total=plan.steps) if ready else
                          guide.run_summary(done, plan.steps, result["seconds"], max(result["image"].size),
                                            result["cut"], result["limit"]))
    guide.look(P, "live")
else:
    g_slot.image(start, caption=tr("noise_G"), width="stretch")

guide.questions(P)
exercise_offer.show(P)  # this lesson's notebook to download (student code runs on the student's computer only)
