"""teachkit in the classroom: the Streamlit entry (``teachkit app`` serves it; the top-level app.py runs
it): six lesson pages in the lecture's order, a language switch, the backbone and device in the sidebar."""

import streamlit as st

from teachkit.lessons import guide, resources, uploads
from teachkit.lessons.pages import PAGES
from teachkit.lessons.i18n import LANG_KEY, LANGS, lang, switch_lang, tr
from teachkit.lessons.settings import default_lang

st.set_page_config(page_title="teachkit", page_icon=":material/palette:", layout="wide")
uploads.check_served_limits()  # the upload limit holds however the app was started; no tracebacks for visitors
resources.light_reruns()  # no full garbage collection after every run (see lessons/resources.py)

# The language: ?lang= in the address, else TEACHKIT_LANG, then the sidebar switch.  Kept under its own key,
# written by code: a widget's value alone is lost when a student leaves the page before its first run ends.
if LANG_KEY not in st.session_state:
    wanted = st.query_params.get("lang", default_lang())
    st.session_state[LANG_KEY] = wanted if wanted in LANGS else default_lang()
with st.sidebar:
    st.radio("Language / 语言", list(LANGS), index=list(LANGS).index(lang()), format_func=LANGS.get, key="lang",
             horizontal=True, on_change=switch_lang)
    guide.projector_switch()
    if css := uploads.dropzone_css():  # the uploader's own words in Chinese too
        st.html(css)
# ... and the address keeps it: a reloaded page or a link passed on opens in the same language.
if st.query_params.get("lang") != lang():
    st.query_params["lang"] = lang()

pages = [
    st.Page(p.path, title=f"{p.number}. {tr(f'title_{p.number}')}", icon=p.icon,
            url_path=guide.own_url_path(p), default=(p.number == 1))
    for p in PAGES
]
nav = st.navigation(pages + guide.extra_pages())  # + lesson 1 at /layers too, and the slides
# the slides: the room sees the slide, not the menu
st.set_page_config(initial_sidebar_state="collapsed" if nav.url_path == "slides" else "expanded")

with st.sidebar:
    net = resources.backbone()
    resources.start_warm_up()  # the default figures of lessons 1 and 5, made once in the background
    st.divider()
    st.caption(tr("sidebar_backbone"))
    st.markdown(f"**{net.name}**  \n{resources.backbone_description(net)}")
    st.caption(tr("sidebar_device"))
    st.markdown(f"**{resources.device_label()}**")

nav.run()
