"""Classroom settings, read from environment variables (see :data:`SETTINGS_HELP`).

Plain Python, no Streamlit: the pages, the job machinery and background threads all read them.
"""

from __future__ import annotations

import os

SETTINGS_HELP = """
TEACHKIT_BACKBONE       backbone name (default vgg19, works offline)
TEACHKIT_DEVICE         cpu / cuda / mps (default: the best available)
TEACHKIT_FAST=1         tiny demo sizes and step counts (tests, very slow machines)
TEACHKIT_DEMO_SIZE      long side (px) of every live demo, overriding each page's default
TEACHKIT_DEMO_STEPS     steps of every live demo, overriding each page's default
TEACHKIT_ATLAS_DATASET  dataset the first lesson scans by default ('sample' or a folder)
TEACHKIT_ATLAS_SIZE     side (px) at which the atlas images are scanned (tests: small)
TEACHKIT_CACHE          where scanned atlases and prepared results are kept (default: the OS's cache folder)
TEACHKIT_LANG           the language a page opens in without ?lang= in its address (en / zh; default en)
TEACHKIT_MAX_JOBS       how many heavy computations may run at once (default 2), served in order of arrival;
                        long ones (lesson-6 transfers, folder scans) hold at most all but one of them
TEACHKIT_QUICK_JOBS     clicks on lesson 3's "Step" computed at once, in a lane of their own (default 2)
TEACHKIT_DEMO_SECONDS   time limit of the demos of lessons 2-5 (default 25; 0: none)
TEACHKIT_DEMO_MIN_SECONDS  the shortest a demo is cut to while others queue behind it (default 6)
TEACHKIT_WARMUP=0       do not make the default figures in the background when the app starts
TEACHKIT_SHARED_DEMOS=0 every press of a demo computes its own run (default: presses of the same demo with the
                        same pictures and settings while one is under way watch that run; lessons/together.py)
TEACHKIT_UPLOAD_MAX_MB  largest accepted upload in megabytes (default 10)
TEACHKIT_UPLOAD_MAX_MP  largest accepted upload in megapixels (default 12)
TEACHKIT_UPLOAD_SESSION_FILES / TEACHKIT_UPLOAD_SESSION_MB  uploads one session may hold (8 files / 3 x the MB limit)
TEACHKIT_UPLOAD_SERVER_MB  uploads all sessions together may hold, in MB (default 300); more is refused (HTTP 413)
TEACHKIT_DATA_ROOT      lesson 1's folder box is off unless this names a folder; only folders inside it
TEACHKIT_JOB_SECONDS    time limit of one lesson-6 transfer (default 300)
TEACHKIT_JOB_QUEUE      lesson-6 transfers that may wait for a slot (default 8); one job per client (a browser
                        with all its tabs, known by Streamlit's XSRF cookie; else the address): a new one replaces it
TEACHKIT_JOBS_PER_ADDRESS  lesson-6 transfers queued or running from one network address (default 3; 0: no cap;
                        the loopback address is exempt): a student renewing the cookie cannot fill the queue
TEACHKIT_HEARTBEAT_SECONDS  a transfer whose page has gone this long is cancelled (default 20)
TEACHKIT_JOB_MAX_SIZE / TEACHKIT_JOB_MAX_STEPS / TEACHKIT_JOB_MAX_HISTORY  caps (512 / 500 / 50)
TEACHKIT_MAX_SCANS      lesson-1 folder atlases kept at once besides the default (default 3)
TEACHKIT_MAX_STYLE_UPLOADS  style uploads used in lesson 6 (default 3)
"""


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
    """Time limit (s) of a live demo on lessons 2-5: ``TEACHKIT_DEMO_SECONDS``, default 25, 0 = none.

    A demo stops after this long with the image it has, so it ends on time on any machine.
    """
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
    return os.environ.get("TEACHKIT_ATLAS_DATASET", "").strip() or "sample"


def atlas_image_size() -> int | None:
    """Scan size: ``TEACHKIT_ATLAS_SIZE`` (tests use a small one), else teachkit's default."""
    return env_int("TEACHKIT_ATLAS_SIZE", 0) or None
