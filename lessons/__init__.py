"""The lesson pages of the teachkit classroom app (run ``streamlit run app.py``).

One file per page (``1_layers.py`` ... ``6_run.py``); what they share, one job per module:

* ``settings`` -- classroom settings from environment variables;
* ``i18n`` -- the language switch, short labels (``_strings``) and lesson texts (``text/<lang>/*.md``);
* ``resources`` -- the shared backbone, sample images and figures made once per process;
* ``jobs`` -- compute slots, progress on the page, background transfer jobs and atlas builders;
* ``uploads`` -- uploads with their limits;
* ``charts`` and ``demos`` -- the cost charts and the step-by-step demos of lessons 3 and 5.
"""
