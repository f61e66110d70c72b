"""The lesson pages of the teachkit classroom app: one file per page (``1_layers.py`` ... ``6_run.py``)
and what they share: ``settings``, ``i18n``, ``resources`` (backbone, samples, cached figures), ``jobs``
(compute slots, transfer jobs, atlas builders), ``together``, ``uploads``, ``guide``, ``charts``, ``demos``."""
