"""The lesson pages of the teachkit classroom app (run ``streamlit run app.py``).

One file per page; ``_common`` holds what the pages share (language, texts, cached models,
uploads, progress display, the background transfer job); ``text/<lang>/*.md`` holds the lesson
texts and ``_strings`` the short interface labels, in English and Chinese.
"""
