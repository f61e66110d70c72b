"""Uploads: limits that hold however the app is started, decoded once, short errors.

* the server refuses requests above ``server.maxUploadSize``; :func:`check_served_limits` switches
  uploads off when that is larger than the app's own limit;
* the pixel count is read from the header before decoding (:func:`teachkit.images.check_upload`),
  ``UPLOAD_MAX_PIXELS`` bounds a decode's memory (benchmarks/upload_decode.py), ``MAX_DECODES`` run at once;
* a decoded upload is kept in its session (by the SHA-256 of its bytes), no larger than ever used;
* :func:`install_upload_bounds` makes the server refuse (HTTP 413) a file that would take one session
  past ``SESSION_FILES`` files or ``SESSION_MB`` MB, or the server past ``SERVER_MB`` MB;
* every problem is one ``st.error`` naming the file, shown literally (:func:`markdown_literal`)."""

from __future__ import annotations

import collections
import hashlib
import logging
import threading

import streamlit as st

from teachkit.lessons.i18n import error_text, lang, tr
from teachkit.messages import Message
from teachkit.lessons.jobs import LIMITS
from teachkit.lessons.settings import env_int

_log = logging.getLogger(__name__)

UPLOAD_MAX_MB = max(1, env_int("TEACHKIT_UPLOAD_MAX_MB", 10))
UPLOAD_MAX_PIXELS = max(1, env_int("TEACHKIT_UPLOAD_MAX_MP", 12)) * 1_000_000
UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff"]
MAX_STYLE_UPLOADS = max(1, env_int("TEACHKIT_MAX_STYLE_UPLOADS", 3))
MAX_DECODES = 2  #: uploads decoded at the same time, for the whole classroom (bounds decode memory)
SESSION_FILES = max(1, env_int("TEACHKIT_UPLOAD_SESSION_FILES", 8))  #: files one session may hold
SESSION_MB = max(UPLOAD_MAX_MB, env_int("TEACHKIT_UPLOAD_SESSION_MB", 3 * UPLOAD_MAX_MB))  #: MB one session may hold
SERVER_MB = max(SESSION_MB, env_int("TEACHKIT_UPLOAD_SERVER_MB", 300))  #: MB all sessions together may hold
_CACHE_KEY = "_uploads"
_CACHE_SIZE = MAX_STYLE_UPLOADS + 2  # decoded uploads kept per session (<= 3 MiB each at 1024 px)

_DECODES = threading.BoundedSemaphore(MAX_DECODES)


# ---- the limits of the running server ----


def server_upload_limit_mb() -> int:
    """The upload limit the running server enforces (``server.maxUploadSize``, MB)."""
    return int(st.get_option("server.maxUploadSize"))


def uploads_allowed() -> bool:
    """True when the server refuses uploads larger than the app's own limit."""
    return server_upload_limit_mb() <= UPLOAD_MAX_MB


_checked = threading.Event()


# ---- upload storage: bounded per session and for the whole server, refused at the door ----


class UploadRefused(Exception):
    """A file that would take a session (or the server) past its upload bounds."""


def _refusal(why: str) -> Exception:
    """The error the upload endpoint answers with: HTTP 413 on Streamlit's Starlette server."""
    try:
        from starlette.exceptions import HTTPException

        return HTTPException(status_code=413, detail=why)
    except ImportError:  # another server: the request fails all the same, nothing is stored
        return UploadRefused(why)


def bounded_add_file(add_file, storage, *, session_files: int, session_bytes: int, server_bytes: int):
    """Streamlit's ``add_file(session_id, file)``, refusing a file that would take its session past
    ``session_files`` files or ``session_bytes``, or all sessions past ``server_bytes``; ``storage`` is the
    manager's ``{session: {file_id: file}}`` (a file replacing one with its id is counted instead)."""
    guard = threading.Lock()

    def add(session_id, file):
        with guard:
            held = dict(storage.get(session_id) or {})
            old = held.pop(file.file_id, None)
            size = len(file.data)
            mine = sum(len(f.data) for f in held.values()) + size
            total = sum(len(f.data) for files in list(storage.values()) for f in list(files.values()))
            total += size - (len(old.data) if old is not None else 0)
            if len(held) + 1 > session_files:
                why = Message("serving.upload_session_files", {"held": len(held), "limit": session_files})
            elif mine > session_bytes:
                why = Message("serving.upload_session_mb", {"mb": mine / 2**20, "limit": round(session_bytes / 2**20)})
            elif total > server_bytes:
                why = Message("serving.upload_server_full", {"limit": round(server_bytes / 2**20)})
            else:
                return add_file(session_id, file)
        _log.warning("teachkit app: %s", why.text("en"))
        raise _refusal(why.text("en"))  # the uploader shows the status; the detail is for whoever reads HTTP

    add.teachkit_bounded = True
    return add


def install_upload_bounds(manager=None) -> bool:
    """Bound the running server's upload storage (idempotent; ``manager`` defaults to the running
    server's); True when the bounds hold."""
    if manager is None:
        try:
            from streamlit.runtime import Runtime
        except ImportError:  # pragma: no cover - every supported streamlit has it
            return False
        if not Runtime.exists():  # AppTest, plain Python: no server, no upload endpoint
            return False
        manager = Runtime.instance().uploaded_file_mgr
    if getattr(manager.add_file, "teachkit_bounded", False):
        return True
    storage = getattr(manager, "file_storage", None)
    if not isinstance(storage, dict):
        _log.warning("teachkit app: this Streamlit's upload storage is unknown (%s); uploads per session are "
                     "not bounded beyond the per-file limit", type(manager).__name__)
        return False
    manager.add_file = bounded_add_file(manager.add_file, storage, session_files=SESSION_FILES,
                                        session_bytes=SESSION_MB * 2**20, server_bytes=SERVER_MB * 2**20)
    return True


def markdown_literal(text: str) -> str:
    """``text`` as Markdown that shows exactly these characters (for file names visitors chose): ASCII
    punctuation escaped, a word joiner after each colon (no ``:red[x]`` or ``:smile:``), one line."""
    out = []
    for ch in " ".join(str(text).splitlines()):
        if ch == ":":
            out.append(":\u2060")
        elif ch.isascii() and not ch.isalnum() and not ch.isspace():
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


# ---- Streamlit's own words on the uploader, in the session's language ----

_SHOWN_AS = {"jpeg": "jpg", "tiff": "tif"}  # one name per format, as the uploader lists them


def _css_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dropzone_css() -> str:
    """A style sheet that shows the uploader's own words ("Upload", "10MB per file • ...") in the session's
    language, which ``st.file_uploader`` has no setting for: the originals at size 0, the translations
    after them (CSS ``::after``).  '' in English."""
    if lang() == "en":
        return ""
    types = []
    for t in UPLOAD_TYPES:
        shown = _SHOWN_AS.get(t, t).upper()
        if shown not in types:
            types.append(shown)
    button = _css_string(tr("dropzone_button"))
    limit = _css_string(tr("dropzone_limit", mb=UPLOAD_MAX_MB, types="、".join(types)))
    zone = '[data-testid="stFileUploaderDropzone"]'
    return (
        "<style>\n"
        f'{zone} [data-testid="stBaseButton-secondary"] p {{ font-size: 0; }}\n'
        f'{zone} [data-testid="stBaseButton-secondary"] p::after {{ content: {button}; font-size: 0.875rem; }}\n'
        f'{zone} [data-testid="stFileUploaderDropzoneInstructions"] span {{ font-size: 0; white-space: normal; }}\n'
        f'{zone} [data-testid="stFileUploaderDropzoneInstructions"] span::after '
        f"{{ content: {limit}; font-size: 0.875rem; }}\n"
        "</style>"
    )


def check_served_limits() -> bool:
    """Once per process: install the upload bounds and switch uploads off (with a line in the log) when
    the server accepts more than the app's limit; error details for visitors are "none" unless the
    teacher set them.  Returns :func:`uploads_allowed`."""
    from streamlit import config

    ok = uploads_allowed()
    if not _checked.is_set():
        _checked.set()
        install_upload_bounds()
        if not ok:
            _log.warning(
                "teachkit app: the server accepts uploads up to %s MB, more than the app's limit of %s MB: "
                "uploads are switched off.  Start the app with `teachkit app` (or `make run`), or pass "
                "--server.maxUploadSize %s to `streamlit run`.", server_upload_limit_mb(), UPLOAD_MAX_MB,
                UPLOAD_MAX_MB)
    if not config.is_manually_set("client.showErrorDetails") and st.get_option("client.showErrorDetails") != "none":
        st.set_option("client.showErrorDetails", "none")
    return ok


# ---- reading one upload ----


def _cache() -> "collections.OrderedDict[str, tuple]":
    cache = st.session_state.get(_CACHE_KEY)
    if not isinstance(cache, collections.OrderedDict):
        cache = st.session_state[_CACHE_KEY] = collections.OrderedDict()
    return cache


def decode_upload(data: bytes, name: str):
    """Bytes of an uploaded file -> a PIL RGB image no larger than the app ever uses; ImageError naming
    the file for every problem (too many bytes, too many pixels from the header, not an image, corrupt)."""
    from teachkit.images import ImageError, check_upload, load_image

    if len(data) > UPLOAD_MAX_MB * 1024 * 1024:
        raise ImageError.about(name, "image.upload_too_big", mb=f"{len(data) / 2**20:.1f}", limit=UPLOAD_MAX_MB)
    width, height = check_upload(data, max_pixels=UPLOAD_MAX_PIXELS, name=name)  # the header only
    # Larger than ever used: load_image scales it down (a JPEG is even decoded at a reduced scale).
    size = LIMITS.work_side if max(width, height) > LIMITS.work_side else None
    with _DECODES:
        return load_image(data, name=name, max_pixels=UPLOAD_MAX_PIXELS, size=size)


def read_upload(file, what: str):
    """An ``st.file_uploader`` value as a PIL RGB image, or ``st.error`` and None; decoded once per session
    (the image or the error kept by the SHA-256 of its bytes)."""
    if file is None:
        return None
    from teachkit.images import ImageError

    data = file.getvalue()
    key = hashlib.sha256(data).hexdigest()
    cache = _cache()
    hit = cache.get(key)
    if hit is None:
        try:
            hit = ("ok", decode_upload(data, file.name))
        except ImageError as err:
            hit = ("bad", err.with_traceback(None))  # worded when shown: a language switch words it again
        except Exception as err:  # noqa: BLE001 - a decoder bug must not take the page down
            hit = ("bad", ImageError.about(file.name, "image.decoder_failed", detail=type(err).__name__))
        cache[key] = hit
        while len(cache) > _CACHE_SIZE:
            cache.popitem(last=False)
    else:
        cache.move_to_end(key)
    if hit[0] == "bad":
        st.error(tr("upload_bad", what=what, err=error_text(_named_literally(hit[1]))))
        return None
    return hit[1]


def _named_literally(err):
    """The same error, its file name made Markdown-proof (:func:`markdown_literal`) for ``st.error``."""
    from teachkit.images import ImageError

    if isinstance(err, ImageError):
        return ImageError(markdown_literal(err.source), err.problem, err.verb)
    return err


# ---- widgets ----


def _help() -> str:
    return tr("upload_help", mb=UPLOAD_MAX_MB, mp=UPLOAD_MAX_PIXELS // 10**6)


def uploader(what: str, key: str):
    """An image uploader with the classroom limits: ``(PIL image or None, file name)``; only a note when
    uploads are off."""
    if not uploads_allowed():
        st.caption(tr("uploads_off"))
        return None, None
    file = st.file_uploader(tr("upload_label", what=what), type=UPLOAD_TYPES, key=key,
                            max_upload_size=UPLOAD_MAX_MB, help=_help())
    img = read_upload(file, what)
    return img, (file.name if img is not None else None)


def style_uploader(label: str, what: str, key: str) -> list[tuple[str, object]]:
    """Several style images: ``[(file name, PIL image)]`` of the valid ones, at most
    ``MAX_STYLE_UPLOADS`` (a warning says when more were given; the first ones are used)."""
    if not uploads_allowed():
        st.caption(tr("uploads_off"))
        return []
    files = st.file_uploader(label, type=UPLOAD_TYPES, accept_multiple_files=True, key=key,
                             max_upload_size=UPLOAD_MAX_MB, help=_help()) or []
    if len(files) > MAX_STYLE_UPLOADS:
        st.warning(tr("uploads_too_many", n=len(files), limit=MAX_STYLE_UPLOADS))
        files = files[:MAX_STYLE_UPLOADS]
    out = []
    for f in files:
        img = read_upload(f, what)
        if img is not None:
            out.append((f.name, img))
    return out

