"""Lesson 3 -- the cost function: alpha, beta, and gradient descent one step at a time."""

import time

import streamlit as st

from teachkit.lessons import charts, demos, exercise_offer, guide, jobs
from teachkit.lessons import resources as res
from teachkit.lessons import settings as cfg
from teachkit.lessons.i18n import md, page_title, tr

STARTED = time.perf_counter()  # a press of Run starts this script: its time counts against the limit
P = "3_cost"
SIZE = cfg.demo_size(128)
RUN_STEPS = cfg.demo_steps(30)  # steps per press of Run (Pause stops earlier)

page_title(3)
guide.teacher_note(P)
left, right = st.columns([1.1, 1])
with left:
    md(P, "intro")
with right:
    md(P, "algo")

# ---- the pictures (samples or uploads) ----
pick_c, pick_s = st.columns(2)
with pick_c:
    content_key, _ = res.picker("content", "p3_content")
with pick_s:
    style_key, _ = res.picker("style", "p3_style")

# ---- the weights and the buttons ----
defaults = charts.transfer_defaults()
w_a, w_b, w_r = st.columns([2, 2, 1], vertical_alignment="bottom")
alpha_options, beta_options = charts.weight_options(defaults["alpha"]), charts.weight_options(defaults["beta"])
alpha = w_a.select_slider(tr("p3_alpha"), alpha_options, value=alpha_options[4], key="p3_alpha",
                          format_func=charts.fmt_weight)
beta = w_b.select_slider(tr("p3_beta"), beta_options, value=beta_options[4], key="p3_beta",
                         format_func=charts.fmt_weight)
w_r.markdown(f"**{tr('p3_ratio', ratio=charts.fmt_ratio(alpha, beta))}**")
st.caption(charts.beta_note())

# one row of buttons, each as wide as its label (fixed columns cut "Pause" to "Pa…" in projector mode)
row = st.container(horizontal=True, gap="small", vertical_alignment="center")
step = row.button(tr("p3_step"), key="p3_step", icon=":material/skip_next:", width="content")
run = row.button(tr("p3_run"), key="p3_run", type="primary", icon=":material/play_arrow:", width="content")
pause = row.button(tr("p3_pause"), key="p3_pause", icon=":material/pause:", width="content")
reset = row.button(tr("p3_reset"), key="p3_reset", icon=":material/restart_alt:", width="content")
info = row.empty()

# ---- the optimisation lives in this session's state ----
demo = demos.StepDemo.get("p3", SIZE, content_key, style_key)
if reset:
    demo.reset()
demo.set_weights(alpha, beta)  # continues from the current image when the weights change
if pause:
    demo.running = False
if run:
    demo.running = True
    demo.run_until = demo.steps + RUN_STEPS

img_col, chart_col = st.columns([1, 1.4])
with img_col:
    image_slot = st.empty()
    look = st.empty()
    guide.look(P, "image")
with chart_col:
    chart_slot = st.empty()
    guide.look(P, "chart")
formula_slot = st.empty()


def draw(live: bool) -> None:
    """The current image, the curves and the formula with the current numbers."""
    shown = demo.steps
    if not live and demo.steps > 0:
        shown = look.slider(tr("p3_look"), 0, demo.steps, demo.steps, key=f"p3_look_{demo.steps}")
    image_slot.image(demo.snapshot(shown), caption=tr("p3_step_n", n=shown), width="stretch")
    if demo.records:
        chart_slot.vega_lite_chart(guide.chart(charts.cost_chart(demo.points)), width="stretch")
    else:
        chart_slot.info(tr("p3_no_steps"))
    formula_slot.latex(charts.cost_formula(demo.terms(), demo.alpha, demo.beta))


if step:
    demo.running = False
    with jobs.slot_on_page(quick=True):  # one step: its own lane, never behind the long demos
        demo.step(1)
if not demo.can_step:
    info.warning(tr("p3_zero"))
    demo.running = False
elif demo.weights_changed:
    info.info(tr("p3_weights_changed"))

if demo.running and demo.steps < demo.run_until:
    info.caption(tr("p3_running"))
    draw(live=True)
    def shown():
        draw(live=True)
        st.session_state.setdefault("_timings", {}).setdefault("lesson3", {"first_image_at": time.time()})

    wanted, before, spent = demo.run_until - demo.steps, demo.steps, time.perf_counter() - STARTED
    with jobs.slot_on_page():  # ends within the limit on any machine, set-up included: fewer steps if need be
        t0, limit = time.perf_counter() - spent, jobs.demo_limit(cfg.demo_seconds())
        reason = demo.run(wanted, time_limit=None if limit is None else limit - spent, on_step=shown)
    # say so when the limit, not the Run's step count, decided its length (shown after the redraw below)
    st.session_state["p3_last_run"] = (demo.steps - before, wanted, time.perf_counter() - t0, reason == "time_limit",
                                       limit)
    demo.running = False
    st.rerun()  # redraw with the look-back slider
else:
    demo.running = False
    draw(live=False)
    last = st.session_state.pop("p3_last_run", None)
    if last is not None and last[0] < last[1]:
        info.caption(guide.run_summary(last[0], last[1], last[2], SIZE, *last[3:]))

st.divider()
md(P, "curves")
md(P, "ratio_hint")
guide.questions(P)
exercise_offer.show(P)  # this lesson's notebook to download (student code runs on the student's computer only)
