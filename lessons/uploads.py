"""Uploads: limits that hold however the app is started, decoded once, short errors.

The server refuses a request above ``server.maxUploadSize`` (:func:`check_served_limits` switches uploads
off when that is above the app's limit); a file past the storage bounds (per session, per client, the
server) is kept as an empty placeholder and named on the page (:func:`install_upload_bounds`); pixels
are counted from the header before decoding; every problem is one ``st.error`` naming the file literally."""

from __future__ import annotations

import collections
import hashlib
import logging
import threading

import streamlit as st

from teachkit.lessons.i18n import error_text, lang, tr
from teachkit.messages import Message
from teachkit.lessons.jobs import LIMITS, client_key_of, session_id
from teachkit.lessons.settings import env_int
from teachkit.serve import UPLOAD_MB_LIMIT

_log = logging.getLogger(__name__)

UPLOAD_MAX_MB = min(max(1, env_int("TEACHKIT_UPLOAD_MAX_MB", 10)), UPLOAD_MB_LIMIT)
UPLOAD_MAX_PIXELS = max(1, env_int("TEACHKIT_UPLOAD_MAX_MP", 12)) * 1_000_000
UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff"]
MAX_STYLE_UPLOADS = max(1, env_int("TEACHKIT_MAX_STYLE_UPLOADS", 3))
MAX_DECODES = 2  #: uploads decoded at the same time, for the whole classroom (bounds decode memory)
SESSION_FILES = max(1, env_int("TEACHKIT_UPLOAD_SESSION_FILES", 8))  #: files one session may hold
SESSION_MB = max(UPLOAD_MAX_MB, env_int("TEACHKIT_UPLOAD_SESSION_MB", 3 * UPLOAD_MAX_MB))  #: MB one session may hold
CLIENT_MB = max(SESSION_MB, env_int("TEACHKIT_UPLOAD_CLIENT_MB", SESSION_MB))  #: MB one browser's tabs may hold
SERVER_MB = max(CLIENT_MB, env_int("TEACHKIT_UPLOAD_SERVER_MB", 300))  #: MB all sessions together may hold
_CACHE_KEY = "_uploads"
_CACHE_SIZE = MAX_STYLE_UPLOADS + 2  # decoded uploads kept per session (<= 3 MiB each at 1024 px)

_DECODES = threading.BoundedSemaphore(MAX_DECODES)


def server_upload_limit_mb() -> int:
    """The upload limit the running server enforces (``server.maxUploadSize``, MB)."""
    return int(st.get_option("server.maxUploadSize"))


def uploads_allowed() -> bool:
    """True when the server refuses uploads larger than the app's own limit."""
    return server_upload_limit_mb() <= UPLOAD_MAX_MB


_checked = threading.Event()


def _refusal(why: str) -> Exception:
    """HTTP 413 on Streamlit's Starlette server (on another, the request fails all the same)."""
    try:
        from starlette.exceptions import HTTPException

        return HTTPException(status_code=413, detail=why)
    except ImportError:
        return RuntimeError(why)


#: (session, file id) -> why only a placeholder of the file was kept: the page says it (:func:`read_upload`)
_REFUSED: "collections.OrderedDict[tuple[str, str], Message]" = collections.OrderedDict()


def bounded_add_file(add_file, storage, *, session_files: int, session_bytes: int, client_bytes: int,
                     server_bytes: int, client_of=lambda session_id: None):
    """Streamlit's ``add_file(session_id, file)``, keeping a file past its session's, its client's or the
    server's bounds as an empty placeholder, so that the page (not Streamlit's "AxiosError ... 413") names the
    file and the bound in the student's language; a session holding 3 x ``session_files`` files gets a 413."""
    guard, clients = threading.Lock(), {}

    def add(session_id, file):
        with guard:
            for gone in [s for s in clients if s not in storage]:
                del clients[gone]
            client = clients[session_id] = client_of(session_id)
            held = dict(storage.get(session_id) or {})
            held.pop(file.file_id, None)  # a file replacing one with its id is counted instead
            sizes = {s: sum(len(f.data) for f in list(files.values())) for s, files in list(storage.items())
                     if s != session_id}
            mine = sum(len(f.data) for f in held.values()) + len(file.data)
            theirs = mine + sum(n for s, n in sizes.items() if client is not None and clients.get(s) == client)
            if len(held) + 1 > session_files:
                why = Message("serving.upload_session_files", {"held": len(held), "limit": session_files})
            elif mine > session_bytes:
                why = Message("serving.upload_session_mb", {"mb": mine / 2**20, "limit": round(session_bytes / 2**20)})
            elif theirs > client_bytes:
                why = Message("serving.upload_client_mb", {"mb": theirs / 2**20, "limit": round(client_bytes / 2**20)})
            elif mine + sum(sizes.values()) > server_bytes:
                why = Message("serving.upload_server_full", {"limit": round(server_bytes / 2**20)})
            else:
                _REFUSED.pop((session_id, file.file_id), None)
                return add_file(session_id, file)
            _log.warning("teachkit app: %s", why.text("en"))
            if len(held) >= 3 * session_files:
                raise _refusal(why.text("en"))
            _REFUSED[(session_id, file.file_id)] = why
            while len(_REFUSED) > 4096:
                _REFUSED.popitem(last=False)
            add_file(session_id, file._replace(data=b""))

    add.teachkit_bounded = True
    return add


def refusal(file) -> Message | None:
    """Why the server kept only a placeholder of ``file`` (an ``st.file_uploader`` value), or None."""
    return _REFUSED.get((session_id(), getattr(file, "file_id", None)))


FREE_AFTER_SECONDS = max(0, env_int("TEACHKIT_UPLOAD_FREE_SECONDS", 10))  #: a closed tab's uploads, unless it came back


def install_upload_bounds(manager=None) -> bool:
    """Bound the upload storage of ``manager`` (default: the running server's, which then frees a closed tab's
    files after ``FREE_AFTER_SECONDS``); idempotent; True when the bounds hold."""
    import asyncio

    runtime = None
    if manager is None:
        from streamlit.runtime import Runtime

        if not Runtime.exists():  # AppTest, plain Python: no server, no upload endpoint
            return False
        runtime = Runtime.instance()
        manager = runtime.uploaded_file_mgr
    storage = getattr(manager, "file_storage", None)
    if not isinstance(storage, dict):
        _log.warning("teachkit app: this Streamlit's upload storage is unknown (%s); uploads per session are "
                     "not bounded beyond the per-file limit", type(manager).__name__)
        return False
    if not getattr(manager.add_file, "teachkit_bounded", False):
        manager.add_file = bounded_add_file(
            manager.add_file, storage, session_files=SESSION_FILES, session_bytes=SESSION_MB * 2**20,
            client_bytes=CLIENT_MB * 2**20, server_bytes=SERVER_MB * 2**20, client_of=client_key_of)
    if runtime is None or getattr(runtime.disconnect_session, "teachkit_frees", False):
        return True
    disconnect = runtime.disconnect_session

    def free(session_id):
        if not runtime.is_active_session(session_id):
            manager.remove_session_files(session_id)

    def disconnected(session_id, *args, **kwargs):
        disconnect(session_id, *args, **kwargs)
        try:
            asyncio.get_running_loop().call_later(FREE_AFTER_SECONDS, free, session_id)
        except RuntimeError:  # not on the server's event loop (Streamlit calls it there): no grace
            free(session_id)

    disconnected.teachkit_frees = True
    runtime.disconnect_session = disconnected
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


_SHOWN_AS = {"jpeg": "jpg", "tiff": "tif"}  # one name per format, as the uploader lists them


def _css_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dropzone_css() -> str:
    """A style sheet showing the uploader's own words ("Upload", "10MB per file • ...") in the session's
    language, which ``st.file_uploader`` has no setting for ('' in English)."""
    if lang() == "en":
        return ""
    types = dict.fromkeys(_SHOWN_AS.get(t, t).upper() for t in UPLOAD_TYPES)
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
    """Once per process: install the upload bounds, switch uploads off (logged) when the server accepts more
    than the app's limit, and no error details for visitors unless the teacher set them."""
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


def _cache() -> "collections.OrderedDict[str, tuple]":
    cache = st.session_state.get(_CACHE_KEY)
    if not isinstance(cache, collections.OrderedDict):
        cache = st.session_state[_CACHE_KEY] = collections.OrderedDict()
    return cache


def decode_upload(data: bytes, name: str):
    """Bytes of an uploaded file -> a PIL RGB image no larger than the app ever uses; ImageError naming the file."""
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

    why = refusal(file)
    if why is not None:
        st.error(tr("upload_bad", what=what, err=error_text(ImageError(markdown_literal(file.name), why, "use"))))
        return None
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


def _help() -> str:
    return tr("upload_help", mb=UPLOAD_MAX_MB, mp=UPLOAD_MAX_PIXELS // 10**6)


def uploader(what: str, key: str):
    """An image uploader with the classroom limits: ``(PIL image or None, file name)``, the name as Markdown
    that shows it literally (for captions); only a note when uploads are off."""
    if not uploads_allowed():
        st.caption(tr("uploads_off"))
        return None, None
    file = st.file_uploader(tr("upload_label", what=what), type=UPLOAD_TYPES, key=key,
                            max_upload_size=UPLOAD_MAX_MB, help=_help())
    img = read_upload(file, what)
    return img, (markdown_literal(file.name) if img is not None else None)


def style_uploader(label: str, what: str, key: str) -> list[tuple[str, object]]:
    """Several style images: ``[(file name as literal Markdown, PIL image)]`` of the valid ones, at most
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
            out.append((markdown_literal(f.name), img))
    return out

