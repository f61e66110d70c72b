"""teachkit in the classroom, from a checkout: ``streamlit run app.py`` runs ``teachkit.lessons.app``
(lessons/app.py).  To serve a class, prefer ``teachkit app`` (or ``make run``): the classroom settings."""

import runpy

runpy.run_module("teachkit.lessons.app", run_name="__main__")
