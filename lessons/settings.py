"""Classroom settings, read from environment variables (docs/settings.md lists them all).

Plain Python, no Streamlit: the pages, the job machinery and background threads all read them.
"""

from __future__ import annotations

import os


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def env_on(name: str) -> bool:
    """A switch that is on unless set to 0 / false / no / off."""
    return os.environ.get(name, "1").strip().lower() not in ("0", "false", "no", "off")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    try:
        return int(raw) if raw else int(default)
    except ValueError:
        return int(default)


def fast_mode() -> bool:
    """TEACHKIT_FAST=1: tiny demos (read at every call, so tests can switch it on)."""
    return env_flag("TEACHKIT_FAST")


BACKBONE = os.environ.get("TEACHKIT_BACKBONE", "").strip() or "vgg19"
DEVICE = os.environ.get("TEACHKIT_DEVICE", "").strip() or None


def warm_up_wanted() -> bool:
    return not fast_mode() and env_on("TEACHKIT_WARMUP")


def shared_demos() -> bool:
    """Presses of the same demo share one run (``TEACHKIT_SHARED_DEMOS``, default on; read at every call)."""
    return env_on("TEACHKIT_SHARED_DEMOS")


def demo_size(default: int, fast: int = 48) -> int:
    """Long side of a live demo: ``TEACHKIT_DEMO_SIZE``, else ``fast`` under TEACHKIT_FAST, else ``default``."""
    return env_int("TEACHKIT_DEMO_SIZE", fast if fast_mode() else default)


def demo_seconds() -> float | None:
    """Time limit (s) of a live demo on lessons 2-5 (it stops with the image it has): ``TEACHKIT_DEMO_SECONDS``,
    default 25, 0 = none."""
    raw = env_int("TEACHKIT_DEMO_SECONDS", 25)
    return float(raw) if raw > 0 else None


def demo_steps(default: int, fast: int = 2) -> int:
    """Steps of a live demo: ``TEACHKIT_DEMO_STEPS``, else ``fast`` under TEACHKIT_FAST, else ``default``."""
    return env_int("TEACHKIT_DEMO_STEPS", fast if fast_mode() else default)


def default_lang() -> str:
    """The language a page opens in when its address has no ``?lang=``: ``TEACHKIT_LANG`` (``teachkit app
    --lang``), 'en' or 'zh'; anything else English."""
    value = os.environ.get("TEACHKIT_LANG", "").strip().lower()
    return value if value in ("en", "zh") else "en"


def atlas_default_dataset() -> str:
    """Lesson 1's dataset: ``TEACHKIT_ATLAS_DATASET``, else the folder of ``teachkit prepare --photos``, else 'sample'."""
    from teachkit.prepare import prepared_photos

    return os.environ.get("TEACHKIT_ATLAS_DATASET", "").strip() or prepared_photos(BACKBONE) or "sample"


def atlas_image_size() -> int | None:
    """Scan size: ``TEACHKIT_ATLAS_SIZE`` (tests use a small one), else teachkit's default."""
    return env_int("TEACHKIT_ATLAS_SIZE", 0) or None
