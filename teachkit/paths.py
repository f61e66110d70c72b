"""Where teachkit keeps what it makes: the OS's cache folder for teachkit (``platformdirs``:
``~/.cache/teachkit`` on Linux, ``~/Library/Caches/teachkit`` on macOS, ``%LOCALAPPDATA%\\teachkit\\Cache``
on Windows), unless ``TEACHKIT_CACHE`` names another."""

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
