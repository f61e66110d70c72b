"""teachkit in the classroom, from a checkout: ``streamlit run app.py``.

The app itself is ``lessons/app.py`` -- the module ``teachkit.lessons.app``, which travels inside the
wheel -- and this script only runs it, so a checkout and an installed teachkit show the same app.
To serve a class, prefer ``teachkit app`` (or ``make run``): it starts Streamlit with the classroom
settings (upload limit, no error details for visitors, no file watcher) from any folder.
"""

import runpy

runpy.run_module("teachkit.lessons.app", run_name="__main__")
