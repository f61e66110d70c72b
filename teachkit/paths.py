"""Where teachkit keeps what it makes: one function, :func:`cache_dir`.

The cache (scanned atlases, prepared lesson results, datasets a teacher puts there) lives where the
operating system keeps applications' caches, as ``platformdirs`` knows it:

* Linux: ``~/.cache/teachkit`` (or ``$XDG_CACHE_HOME/teachkit``);
* macOS: ``~/Library/Caches/teachkit``;
* Windows: ``%LOCALAPPDATA%\\teachkit\\Cache``.

``TEACHKIT_CACHE`` names another folder and always wins (tests, a shared classroom disk).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir(*parts: str) -> Path:
    """The cache folder (``$TEACHKIT_CACHE``, else the OS's cache folder for teachkit), or a folder
    ``parts`` inside it.  Nothing is created here; whoever writes makes the folder."""
    env = os.environ.get("TEACHKIT_CACHE", "").strip()
    if env:
        root = Path(env).expanduser()
    else:
        from platformdirs import user_cache_path

        # appauthor=False: no vendor folder on Windows (%LOCALAPPDATA%\teachkit\Cache)
        root = user_cache_path("teachkit", appauthor=False)
    return root.joinpath(*parts)
