"""teachkit in the classroom: the Streamlit entry (``teachkit app`` serves it; see teachkit/serve.py).

It ships inside the wheel as ``teachkit.lessons.app``; the repository's top-level ``app.py`` only runs
it, so ``streamlit run app.py`` from a checkout and ``teachkit app`` from anywhere show the same app.
Six lesson pages, in the order of the lecture (lessons/*.py), a language switch that every page
honours, and the backbone and device in the sidebar.  Everything works offline on a laptop CPU.
"""

import streamlit as st

from teachkit.lessons import guide, resources, uploads
from teachkit.lessons.pages import PAGES
from teachkit.lessons.i18n import LANG_KEY, LANGS, lang, switch_lang, tr
from teachkit.lessons.settings import default_lang

st.set_page_config(page_title="teachkit", page_icon=":material/palette:", layout="wide",
                   initial_sidebar_state="expanded")
uploads.check_served_limits()  # the upload limit holds however the app was started; no tracebacks for visitors
resources.light_reruns()  # no full garbage collection after every run (see lessons/resources.py)

# The language: ?lang=zh in the address opens the app in Chinese (without it: TEACHKIT_LANG, which
# `teachkit app --lang` sets, else English); afterwards the sidebar switch rules.
# It is kept under its own key (LANG_KEY), written by code: a widget's value alone is lost when a
# student clicks another page before the first run has finished (the load benchmark saw Chinese
# sessions turn English that way), and the switch's default is always the language in use.
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

with st.sidebar:
    net = resources.backbone()
    resources.start_warm_up()  # the default figures of lessons 1 and 5, made once in the background
    st.divider()
    st.caption(tr("sidebar_backbone"))
    st.markdown(f"**{net.name}**  \n{resources.backbone_description(net)}")
    st.caption(tr("sidebar_device"))
    st.markdown(f"**{resources.device_label()}**")

nav.run()
