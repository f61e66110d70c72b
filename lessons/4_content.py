"""Lesson 4 -- the content cost: choose the layer l, rebuild C from it, shallow vs middle vs deep."""

import streamlit as st

from teachkit.lessons import exercise_offer, guide, jobs
from teachkit.lessons import resources as res
from teachkit.lessons import settings as cfg
from teachkit.lessons.i18n import md, page_title, tr
from teachkit.prepare import CONTENT_LAYERS
from teachkit.samples import DEFAULT_CONTENT

P = "4_content"
# a run the time limit cuts short says so
SIZE = cfg.demo_size(128, fast=32)
STEPS = cfg.demo_steps(80, fast=2)
GRID_SIZE = cfg.demo_size(96, fast=32)
GRID_STEPS = cfg.demo_steps(40, fast=2)
LIMIT = cfg.demo_seconds()  # TEACHKIT_DEMO_SECONDS (default 25 s; 0: none)
LAYERS = list(CONTENT_LAYERS)
GRID = {"p4_shallow": "relu1_2", "p4_middle": "relu4_2", "p4_deep": "relu5_2"}


def start_image(key: str):
    """What a reconstruction starts from: the engine's faint white noise (teachkit.reconstruct)."""
    from teachkit.reconstruct import initial_image

    return initial_image(res.picture(key, SIZE), SIZE)


page_title(4)
guide.teacher_note(P)
md(P, "intro")
md(P, "layer_names")

# ---- prepared: the photo rebuilt from every layer, at once ----
md(P, "why_middle")
item = res.prepared("content", DEFAULT_CONTENT)
if item is None:
    st.info(tr("not_prepared"))
else:
    from teachkit.viz import zoom

    zoomed = st.toggle(tr("p4_zoom"), key="p4_zoom")  # at this size the shallow layers look alike: the detail shows
    shown = [(res.sample(DEFAULT_CONTENT, item.meta["size"]), tr("content_C"))]
    shown += [(img, tr("p4_from", layer=label, d=info["distance"]))
              for img, label, info in zip(item.images, item.labels, item.meta["images"])]
    for i, (img, caption) in enumerate(shown):  # three to a row: large enough to compare
        if i % 3 == 0:
            cols = st.columns(3)
        cols[i % 3].image(zoom(img) if zoomed else img, caption=caption, width="stretch")
    st.caption(tr("p4_prepared_note", steps=item.meta["steps"], size=item.meta["size"]))
    guide.look(P, "grid")

# ---- live: one layer, any photo ----
st.divider()
md(P, "experiment")
s1, s2, s3 = st.columns([1, 1, 1], vertical_alignment="top")
with s1:
    content_key, content_label = res.picker("content", "p4_content", DEFAULT_CONTENT)
layer = s2.selectbox(tr("p4_layer"), LAYERS, index=LAYERS.index("relu4_2"), key="p4_layer")
run = s3.button(tr("p4_run"), type="primary", key="p4_run", icon=":material/play_arrow:", width="stretch")
s3.caption(tr("p4_note", size=SIZE, steps=STEPS))

col_c, col_g, col_m = st.columns([1, 1, 0.8])
with col_c:
    st.subheader(tr("content_C"))
    res.show_image(res.picture(content_key, SIZE))
with col_g:
    st.subheader(tr("p4_recon", layer=layer))
    g_slot = st.empty()
    progress_slot = st.container()
with col_m:
    st.subheader(tr("p4_distance"))
    metrics = st.container()

settings = (content_key, layer, SIZE, STEPS)
result = st.session_state.get("p4_result")
if run:
    from teachkit.reconstruct import reconstruct_content

    from teachkit.lessons.together import shared_run

    with progress_slot:  # pressed by several students at once: computed once, watched by the others
        view = jobs.LiveView("lesson4", image_slot=g_slot, show_values=("distance",))
        r = shared_run(("lesson4", *settings, res.backbone().name, LIMIT), {"G": view},
                       lambda cb: reconstruct_content(res.backbone(), res.picture(content_key), layer, size=SIZE,
                                                      steps=STEPS, callback=cb["G"], image_every=1,
                                                      time_limit=jobs.demo_limit(LIMIT)))
        view.done()
    result = st.session_state["p4_result"] = {"settings": settings, "image": r.image, "distance": r.distance,
                                              "content": r.final.get("content"), "steps": r.steps,
                                              "seconds": r.seconds, "stopped": r.stopped}
if result is not None and result["settings"] == settings:
    g_slot.image(result["image"], width="stretch")
    progress_slot.caption(guide.run_summary(result["steps"], STEPS, result["seconds"], SIZE, result["stopped"]))
    metrics.metric(tr("p4_pixel_rms"), f"{result['distance']:.3f}")
    metrics.metric(tr("p4_content_cost", layer=layer), f"{result['content']:.3g}")
    guide.look(P, "live")
else:
    g_slot.image(start_image(content_key), caption=tr("p4_start"), width="stretch")
md(P, "distance")

# ---- shallow vs middle vs deep, live: all three, always ----
st.divider()
grid_run = st.button(tr("p4_grid"), key="p4_grid", icon=":material/play_arrow:")
st.caption(tr("p4_grid_note", size=GRID_SIZE, steps=GRID_STEPS))
grid_slot = st.empty()
grid_settings = (content_key, GRID_SIZE, GRID_STEPS)
grid = st.session_state.get("p4_grid_result")
if grid_run:
    from teachkit.reconstruct import reconstruct_content
    from teachkit.lessons.together import shared_run

    # one reconstruction per layer, each with its own share of the time limit: a slow first layer can
    # never take the other two with it (a cut one says how far it got)
    cols = grid_slot.container().columns(len(GRID))
    views = {}
    for col, kind in zip(cols, GRID):
        with col:
            views[kind] = jobs.LiveView(f"lesson4_grid_{kind}", image_width="stretch", show_values=("distance",))

    def grid_work(cb):
        share = None if LIMIT is None else jobs.demo_limit(LIMIT) / len(GRID)
        out = []
        for kind, name in GRID.items():
            r = reconstruct_content(res.backbone(), res.picture(content_key), name, size=GRID_SIZE,
                                    steps=GRID_STEPS, callback=cb[kind], image_every=5, time_limit=share)
            out.append((r.image, name, r.distance, r.steps, r.seconds, r.stopped))
        return out

    # pressed by several students at once: computed once, watched by the others
    items = shared_run(("lesson4_grid", *grid_settings, res.backbone().name, LIMIT), views, grid_work)
    for view in views.values():
        view.done()
    grid = st.session_state["p4_grid_result"] = {"settings": grid_settings, "items": items}
if grid is not None and grid["settings"] == grid_settings:
    grid_slot.empty()
    cols = st.columns(len(GRID))
    for col, (img, name, dist, done, secs, stopped), kind in zip(cols, grid["items"], GRID):
        col.image(img, caption=f"{tr(kind)} · {tr('p4_from', layer=name, d=dist)}", width="stretch")
        col.caption(guide.run_summary(done, GRID_STEPS, secs, GRID_SIZE, stopped))
    guide.look(P, "grid_live")

guide.questions(P)
exercise_offer.show(P)  # this lesson's notebook to download (student code runs on the student's computer only)
