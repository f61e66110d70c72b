"""Lesson 6 -- run a full transfer: uploads, every option (the form made from ``teachkit.options``, resolved
once by ``teachkit.transfer.schedule``), the job in a thread (``jobs.TransferJob``) shown by a fragment
every second with Cancel (which keeps the latest image), downloads."""

import dataclasses

import streamlit as st

from teachkit import options
from teachkit.lessons import charts, exercise_offer, guide, jobs, resources, uploads
from teachkit.lessons import settings as cfg
from teachkit.lessons.i18n import choice, error_text, lang, md, page_title, progress_message, tr
from teachkit.prepare import GALLERY
from teachkit.samples import DEFAULT_CONTENT, DEFAULT_STYLE
from teachkit.transfer import TransferConfig, schedule

P = "6_run"
FAST = cfg.fast_mode()
QUICK = TransferConfig.preset("quick")  # the engine's classroom recipe: the options start there
DEFAULT_SIZE = cfg.demo_size(QUICK.size, fast=48)
DEFAULT_STEPS = cfg.demo_steps(QUICK.steps, fast=3)

page_title(6)
guide.teacher_note(P)
md(P, "intro")

# ---- a finished example at once (teachkit prepare) ----
example = next((resources.prepared("gallery", *p) for p in GALLERY if resources.prepared("gallery", *p)), None)
if example is not None:
    st.subheader(tr("p6_example"))
    e1, e2, e3 = st.columns(3)
    e1.image(resources.sample(example.meta["content"], 384), caption=tr("content_C"), width="stretch")
    e2.image(resources.sample(example.meta["style"], 384), caption=tr("style_S"), width="stretch")
    e3.image(example.final, caption=tr("p6_example_caption", steps=example.meta["steps"],
                                       secs=example.meta["seconds"]), width="stretch")
    guide.look(P, "example")
    st.divider()

net = resources.backbone()
job = st.session_state.get("p6_job")
busy = job is not None and job.alive
names = resources.samples()

# ---- the images ----
col_c, col_s = st.columns(2)
with col_c:
    st.subheader(tr("p6_content"))
    content_key, content_label = resources.picker("content", "p6_content", DEFAULT_CONTENT, tucked=False)
    content_img = resources.picture(content_key)
    resources.show_image(content_img, caption=f"{content_label} · {content_img.size[0]}×{content_img.size[1]}",
                         width=320)
with col_s:
    st.subheader(tr("p6_styles"))
    style_labels = {n: resources.sample_label(n) for n in names["style"]}
    style_names = st.multiselect(tr("p6_style_samples"), names["style"], default=[DEFAULT_STYLE],
                                 key=f"p6_style_samples__{lang()}", max_selections=jobs.LIMITS.max_styles,
                                 format_func=style_labels.__getitem__)
    uploaded = uploads.style_uploader(tr("p6_upload_styles"), tr("what_style"), "p6_style_upload")
    styles = uploaded or [(style_labels[n], resources.sample(n, 512)) for n in style_names]
    if styles:
        st.image([img for _, img in styles], caption=[n for n, _ in styles], width=150)
    else:
        st.warning(tr("p6_no_style"))

# ---- the options: every widget is made from the options' one declaration (teachkit/options.py) ----
st.subheader(tr("p6_options"))
md(P, "options")
CAPS = dataclasses.asdict(jobs.LIMITS)  # the served caps in force (the attributes teachkit.options names)
START = dataclasses.replace(QUICK, size=DEFAULT_SIZE, steps=DEFAULT_STEPS)  # where the form starts
problems: list[str] = []
values: dict = {}


def draw(f: options.FormField, where):
    """One widget of the form (an :class:`teachkit.options.FormField`) in ``where``; returns its value."""
    kw = {"key": f.key, "help": f.help}
    if f.widget == "slider":
        return where.slider(f.label, f.low, f.high, f.value, f.step, **kw)
    if f.widget == "number":
        return where.number_input(f.label, f.low, f.high, f.value, f.step,
                                  format=None if isinstance(f.value, int) else "%g", **kw)
    if f.widget == "toggle":
        return where.toggle(f.label, value=f.value, **kw)
    if f.widget == "text":
        return where.text_input(f.label, value=f.value, **kw)
    if f.widget == "multiselect":
        return where.multiselect(f.label, list(f.options), default=list(f.value), **kw)
    if not f.option_labels:  # a layer of the backbone: its own name is its label
        return where.selectbox(f.label, list(f.options), index=list(f.options).index(f.value), **kw)
    with where:  # translated choices keep their value across a language switch
        return choice(st.radio if f.widget == "radio" else st.selectbox, f.label, list(f.options), f.key,
                      default=f.value, labels=f.option_labels.__getitem__, help=f.help,
                      **({"horizontal": True} if f.widget == "radio" else {}))


def draw_section(section: str, where) -> None:
    """The declared options of one section ('main', 'more'), four to a row (three with the projector's
    larger text); a list field (layers, numbers) gets a full-width row, so that its chips and text are whole."""
    per_row, row = (3 if guide.projector() else 4), []
    for o in (o for o in options.lesson_options() if o.lesson == section):
        f = options.form_field(o.name, lang(), caps=CAPS, layers=tuple(net.layer_names), chosen=values, start=START)
        if f.widget in ("multiselect", "text"):
            column, row = where, []
        else:
            row = row or list(where.columns(per_row))
            column = row.pop(0)
        try:
            values[o.name] = options.form_value(o.name, draw(f, column))
        except ValueError as err:  # a text box that is not a list of numbers
            problems.append(error_text(err))
            values[o.name] = None


draw_section("main", st)
st.caption(charts.beta_note())
with st.expander(tr("p6_more")):
    draw_section("more", st)
plan = None
if styles:
    try:
        plan = schedule(options.config_from_form(values, backbone=net.name), len(styles))  # resolved once
    except ValueError as err:
        problems.append(tr("p6_bad_config", err=error_text(err)))
    else:
        problems += jobs.check_transfer(plan, len(styles))  # the classroom limits, whatever the browser sent
for problem in problems:
    st.error(problem)

# ---- start / cancel / result ----
# One row of buttons as wide as their labels (narrow columns cut "Clear the result" off, or wrap it).
buttons = st.container(horizontal=True, gap="small")
start = buttons.button(tr("p6_start"), type="primary", key="p6_start", icon=":material/play_arrow:", width="content",
                       disabled=busy or bool(problems) or not styles)
if job is not None and not busy and buttons.button(tr("p6_new"), key="p6_clear", icon=":material/delete:",
                                                   width="content"):
    st.session_state.pop("p6_job", None)
    st.rerun()
if start and not busy:
    job = jobs.TransferJob(content_img, [img for _, img in styles], plan, net).start()
    st.session_state["p6_job"] = job
    busy = True


@st.fragment(run_every=1.0 if busy else None)
def live() -> None:
    """Progress, the latest image and Cancel while the job runs; the result and downloads after."""
    job = st.session_state.get("p6_job")
    if job is None:
        return
    snap = job.snapshot()
    running = job.alive
    left, right = st.columns([1, 1.2])
    with left:
        if snap["image"] is not None:
            caption = tr("p6_latest") if running else f"{snap['image'].size[0]}×{snap['image'].size[1]}"
            st.image(snap["image"], caption=caption, width="stretch")
    with right:
        if running:
            if snap["state"] == "queued":
                st.info(jobs.queue_text(snap))
            frac = snap["step"] / snap["total"] if snap["total"] else 0.0
            st.progress(min(1.0, frac), text=tr("p6_running", message=progress_message(snap["message"]) or "…", step=snap["step"],
                                                  total=snap["total"], secs=snap["elapsed"]))
            if job.stop_event.is_set():
                st.warning(tr("p6_cancelling"))
            elif st.button(tr("p6_cancel"), key="p6_cancel", icon=":material/stop:"):
                job.cancel()
                st.warning(tr("p6_cancelling"))
        elif jobs.reason_text(snap) and snap["result"] is None:  # refused, replaced or abandoned before a step
            st.warning(jobs.reason_text(snap))
        elif snap["state"] == "failed":
            st.error(tr("failed", err=error_text(snap["error"])))
        elif snap["result"] is None:  # cancelled while it waited for a free slot
            st.warning(tr("p6_cancelled", step=0))
        elif snap["result"] is not None:
            res = snap["result"]
            st.session_state["last_G"] = res.image  # lesson 5 can compare its Gram matrices with S
            if res.stopped:
                st.warning(jobs.reason_text(snap) or tr("p6_cancelled", step=len(res.history)))
            else:
                st.success(tr("p6_done", secs=res.seconds))
            md(P, "done")
            st.markdown(progress_message(res.plan.weights_message()))  # the weights J really used
            guide.look(P, "result")
            downloads = st.container(horizontal=True, gap="small")  # as wide as their labels, wrapping if need be
            downloads.download_button(tr("p6_download_png"), resources.png_bytes(res.image), "teachkit_G.png",
                                      "image/png", key="p6_dl_png", icon=":material/download:", on_click="ignore",
                                      width="content")
            downloads.download_button(tr("p6_download_log"), job.log_json(), "teachkit_costs.json", "application/json",
                                      key="p6_dl_log", icon=":material/download:", on_click="ignore", width="content")
        if snap["records"]:
            st.vega_lite_chart(guide.chart(charts.cost_chart(snap["records"])), width="stretch")
    if not running and busy:
        st.rerun()  # the job has just ended: redraw the page (Start enabled again, no more polling)


live()

guide.questions(P)
exercise_offer.show(P)  # this lesson's notebook to download (student code runs on the student's computer only)
