"""Lesson 1 -- what do deep layers see?  A unit's top patches and what it wants to see, then layers 1-5."""

import streamlit as st

from teachkit.lessons import exercise_offer, guide, jobs
from teachkit.lessons import resources as res
from teachkit.lessons import settings as cfg
from teachkit.lessons.i18n import choice, error_text, lang, md, page_title, tr
from teachkit.features import DEFAULT_STYLE_LAYERS
from teachkit.prepare import prepared_photos
from teachkit.visualize import LIVE_SIZE, LIVE_STEPS, visualize

P = "1_layers"
# the live painting (teachkit.visualize's live recipe); a run the time limit cuts short shows what it made
PAINT_SIZE, PAINT_STEPS = cfg.demo_size(LIVE_SIZE, fast=32), cfg.demo_steps(LIVE_STEPS, fast=2)
LIMIT = cfg.demo_seconds()
page_title(1)
guide.teacher_note(P)
md(P, "intro")

# ---- which dataset (a teacher may point at a folder inside the data root named at start) ----
default_spec = cfg.atlas_default_dataset()
folder = ""
if jobs.folder_box_enabled():
    with st.expander(tr("p1_dataset")):
        md(P, "folder_help")
        folder = st.text_input(tr("p1_folder"), key="p1_folder").strip()
try:
    spec = jobs.dataset_spec(folder, default_spec)
    builder = jobs.atlas_builder(spec, res.backbone(), DEFAULT_STYLE_LAYERS)
except (jobs.FolderRefused, jobs.BuildersBusy) as err:
    st.error(str(err))
    spec = default_spec
    builder = jobs.atlas_builder(spec, res.backbone(), DEFAULT_STYLE_LAYERS)
if st.session_state.get("p1_note"):  # e.g. "the folder scan was cancelled" (set by the Cancel button)
    st.info(tr(st.session_state.pop("p1_note")))


def wait_for(builder) -> None:
    """Progress of a scan until it is done; its visitor may cancel a folder scan."""
    if builder.done.wait(0.3):
        return
    md(P, "scan_note")
    bar = st.progress(0.0, text=tr("p1_scan_wait"))
    if builder.can_cancel(jobs.owner_key()):
        st.button(tr("p1_scan_cancel"), key="p1_scan_cancel", on_click=jobs.cancel_folder_scan, args=(builder,))
    while not builder.done.wait(0.4):
        if builder.total:  # the folder as the visitor named it inside the data root, not the server's path
            bar.progress(builder.step / builder.total,
                         text=tr("p1_scanning", name=builder.label, done=builder.step, total=builder.total))
    bar.empty()


wait_for(builder)
if builder.cancelled:  # cancelled by the visitor who started it: back to the default dataset
    st.info(tr("p1_scan_cancelled"))
    spec = default_spec
    builder = jobs.atlas_builder(spec, res.backbone(), DEFAULT_STYLE_LAYERS)
    wait_for(builder)
if builder.error:
    st.error(tr("p1_dataset_bad", err=error_text(builder.exception or builder.error)))
    if st.button(tr("p1_retry")):
        jobs.forget_atlas_builder(spec)
        st.rerun()
    st.stop()

atlas = builder.atlas
m = atlas.meta
if m.get("stopped") == "time_limit":
    st.warning(tr("p1_scan_time_limit", secs=jobs.SCAN_SECONDS, n=m["n_images"], total=m["dataset_size"]))
photos = res.sample_photos() if m["dataset_name"] == "sample" else None
seen = dict(n=m["n_images"], size=m["image_size"], k=m["k"], cap=m["per_image"])
if photos:  # what was scanned, and how the patches were chosen
    st.caption(tr("p1_photos", photos=len(photos), names=", ".join(photos), **seen))
elif spec == prepared_photos(cfg.BACKBONE):  # the class's own photos (teachkit prepare --photos)
    st.caption(tr("p1_own_photos", name=m["dataset_name"], **seen))
else:
    st.caption(tr("p1_atlas_info", name=m["dataset_name"], **seen))
st.session_state["atlas_spec"] = spec  # lesson 5 shows its channels' top patches from this atlas
LANG, PX = lang(), guide.text_px()


def wants_to_see(layer: str, unit: int) -> None:
    """The image painted to excite the unit (teachkit.visualize): prepared, or painted live on demand."""
    from teachkit.lessons.together import shared_run

    st.subheader(tr("p1_wants"))
    md(P, "wants")
    left, right = st.columns(res.UNIT_COLS)
    slot, key = left.empty(), (layer, unit, PAINT_SIZE, PAINT_STEPS)
    painted = st.session_state.setdefault("p1_painted", {})
    if right.button(tr("p1_paint"), key="p1_paint", icon=":material/brush:"):
        with right:  # pressed by several students at once: computed once, watched by the others
            view = jobs.LiveView("lesson1_paint", image_slot=slot, show_values=("activation",))
            r = shared_run(("lesson1_paint", *key, res.backbone().name, LIMIT), {"G": view},
                           lambda cb: visualize(res.backbone(), layer, unit, PAINT_SIZE, PAINT_STEPS, callback=cb["G"],
                                                image_every=4, time_limit=jobs.demo_limit(LIMIT)))
            view.done()
        painted[key] = r.image, r.activation, guide.run_summary(r.steps, PAINT_STEPS, r.seconds, PAINT_SIZE, r.stopped)
    right.caption(tr("p1_paint_note", size=PAINT_SIZE, steps=PAINT_STEPS))
    item = res.prepared("visualize", layer, str(unit))
    if key not in painted and item is None:
        return slot.info(tr("p1_wants_none"))
    image, value, note = painted.get(key) or (item.final, item.meta["images"][0]["activation"], tr(
        "p1_wants_prepared", size=item.meta["size"], steps=item.meta["steps"]))
    slot.image(image, width="stretch")
    top = atlas.top(layer, unit)
    if top and top[0].value > 0:
        right.metric(tr("p1_wants_ratio"), f"{value / top[0].value:.2f}×",
                     help=tr("p1_wants_values", value=value, top=top[0].value))
    right.caption(note)
    with right:
        guide.look(P, "wants")


# ---- one unit (a fragment: its controls redraw only this part of the page) ----
@st.fragment
def one_unit() -> None:
    layers = atlas.layers
    col_layer, col_how, col_unit = st.columns([1, 1.3, 1])
    layer = col_layer.selectbox(tr("p1_layer"), layers,
                                index=layers.index(res.L1_LAYER) if res.L1_LAYER in layers else 0, key="p1_layer",
                                format_func=lambda name: f"{layers.index(name) + 1} · {name}")
    with col_how:
        how = choice(st.radio, tr("p1_how"), ["most_active", "most_varied", "index"], "p1_how",
                     default=res.L1_HOW, horizontal=True, labels=lambda h: tr(f"how_{h}"))
    n_channels = atlas.channels(layer)
    if how == "index":
        unit = int(col_unit.number_input(tr("p1_unit_index", max=n_channels - 1), 0, n_channels - 1, 0,
                                         key="p1_index"))
    else:
        choices = res.units(atlas, layer, how)
        unit = col_unit.selectbox(tr("p1_unit"), choices, key=f"p1_unit_{layer}_{how}", format_func=lambda u: f"#{u}")
    md(P, "pick")

    left, right = st.columns(res.UNIT_COLS)
    with left:
        st.subheader(tr("p1_patches"))
        res.show_png(res.unit_png(atlas, layer, unit, LANG, PX))
        guide.look(P, "patches")
    with right:
        st.subheader(tr("p1_where"))
        n_hits = max(1, len(atlas.top(layer, unit)))
        rank = st.select_slider(tr("p1_rank"), options=list(range(1, n_hits + 1)), value=1,
                                key=f"p1_rank_{layer}_{unit}")
        try:
            res.show_png(res.where_png(atlas, layer, unit, rank - 1, LANG, PX))
            guide.look(P, "where")
        except ValueError:  # e.g. a unit that never fired
            st.info(tr("p1_never_fired"))
    wants_to_see(layer, unit)


one_unit()

# ---- all layers ----
st.divider()
md(P, "overview")
res.show_png(res.overview_png(atlas, LANG, PX))
guide.look(P, "overview")
md(P, "padding")
md(P, "takeaway")
guide.questions(P)
exercise_offer.show(P)  # this lesson's notebook to download (student code runs on the student's computer only)
