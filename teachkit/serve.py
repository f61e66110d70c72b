"""``teachkit app``: serve the classroom app (``teachkit/lessons/app.py``, in the wheel) from any folder in a
Streamlit child process, with :data:`SETTINGS` passed as flags (they beat any config file; the repository's
``.streamlit/config.toml`` holds the same values), and print the students' address and its QR code."""

from __future__ import annotations

import argparse
import errno
import os
import socket
import subprocess
import sys
from pathlib import Path

from .messages import TeachkitError, text

__all__ = ["SETTINGS", "entry_script", "streamlit_flags", "lan_addresses", "add_app_parser", "cmd_app"]

#: The served settings: Streamlit option -> value (``--upload-mb`` replaces ``server.maxUploadSize``; the app
#: checks that the server's limit is not above its own: teachkit.lessons.uploads.check_served_limits).
SETTINGS: dict[str, object] = {
    "server.headless": True,  # no browser opened on the server
    "server.maxUploadSize": 10,  # MB per request: the server refuses more, whatever the browser does
    "server.maxMessageSize": 50,
    "server.fileWatcherType": "none",  # nothing is watched or re-run while a class uses it
    "server.runOnSave": False,
    "browser.gatherUsageStats": False,  # the classroom is often offline: never phone home
    # teachkit app prints the addresses itself; Streamlit's own banner would ask a web service for the
    # "external" address of a headless server on every interface (a request out of the classroom)
    "logger.hideWelcomeMessage": True,
    "client.showErrorDetails": "none",  # visitors see a short message; the traceback goes to the log
    "client.toolbarMode": "viewer",
    "runner.postScriptGC": False,  # no full garbage collection after every run (lessons/resources.py)
    "runner.fastReruns": True,  # a click during a running demo interrupts it at once
    "theme.base": "light",  # projector-friendly: slightly larger text, high contrast
    "theme.baseFontSize": 17,
    "theme.primaryColor": "#c2410c",
}

DEFAULT_PORT = 8501
UPLOAD_MB_LIMIT = 100  #: the largest --upload-mb (a photo is far smaller; the app's storage bounds grow with it)


class AppError(TeachkitError, ValueError):
    """A problem with ``teachkit app``'s options (one line from the CLI, exit code 2)."""


#: a private address of each private range: "connecting" a UDP socket to one sends nothing, but makes the
#: system choose the interface (and so the address) it would use for the class network
_PRIVATE_PROBES = ("192.168.255.255", "10.255.255.255", "172.31.255.255")


def entry_script() -> Path:
    """The app's Streamlit script: ``teachkit/lessons/app.py``, wherever teachkit is installed."""
    import importlib.util

    spec = importlib.util.find_spec("teachkit.lessons")
    return Path(spec.submodule_search_locations[0]) / "app.py"


def _flag_value(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def streamlit_flags(upload_mb: int | None = None, port: int | None = None, local: bool = False) -> list[str]:
    """The ``streamlit run`` flags of :data:`SETTINGS`, with the upload limit (MB), the port and the
    interface (``local``: 127.0.0.1, this computer only; else every IPv4 interface) filled in."""
    options = dict(SETTINGS)
    if upload_mb is not None:
        options["server.maxUploadSize"] = int(upload_mb)
    if port is not None:
        options["server.port"] = int(port)
    options["server.address"] = "127.0.0.1" if local else "0.0.0.0"
    flags: list[str] = []
    for name, value in options.items():
        flags += [f"--{name}", _flag_value(value)]
    return flags


def lan_addresses() -> list[str]:
    """This computer's IPv4 addresses on its networks (not 127.x), the class network's first likely; nothing
    is sent (a UDP socket "connected" to a private address only chooses the interface)."""
    found: list[str] = []
    for probe in _PRIVATE_PROBES:
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.connect((probe, 9))
                address = s.getsockname()[0]
        except OSError:  # no route to that range
            continue
        if address and not address.startswith("127.") and address != "0.0.0.0" and address not in found:
            found.append(address)
    return found


def _print_qr(url: str) -> None:
    """A QR code of ``url`` in the terminal (plain blocks where the console lacks half blocks); nothing
    without segno."""
    try:
        import segno
    except ImportError:
        return
    code = segno.make(url, error="m")
    try:
        code.terminal(compact=True, border=2)
    except UnicodeEncodeError:  # an old Windows console code page
        code.terminal(border=2)


def _whole(low: int, high: float, msg_id: str):
    """An argparse ``type``: a whole number from ``low`` to ``high``, else message ``msg_id``."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = low - 1
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(text(msg_id, value=repr(value), high=high))
        return number

    return parse


_port = _whole(1, 65535, "serve.bad_port")
_upload_mb = _whole(1, UPLOAD_MB_LIMIT, "serve.bad_upload_mb")
_seconds = _whole(0, float("inf"), "serve.bad_seconds")


def _default_upload_mb() -> int:
    try:
        mb = int(os.environ.get("TEACHKIT_UPLOAD_MAX_MB", "").strip() or SETTINGS["server.maxUploadSize"])
    except ValueError:
        mb = int(SETTINGS["server.maxUploadSize"])
    return min(max(1, mb), UPLOAD_MB_LIMIT)


def add_app_parser(sub) -> None:
    from .messages import help_text as words

    p = sub.add_parser("app", help=words("serve.help"), description=words("serve.description"))
    p.add_argument("--port", type=_port, default=DEFAULT_PORT, help=words("serve.help.port", default=DEFAULT_PORT))
    p.add_argument("--local", action="store_true", help=words("serve.help.local"))
    upload_mb = _default_upload_mb()
    p.add_argument("--upload-mb", type=_upload_mb, default=upload_mb, metavar="MB",
                   help=words("serve.help.upload_mb", default=upload_mb, limit=UPLOAD_MB_LIMIT))
    p.add_argument("--data-root", metavar="DIR", default=None, help=words("serve.help.data_root"))
    p.add_argument("--demo-seconds", type=_seconds, default=None, metavar="S", help=words("serve.help.demo_seconds"))
    p.add_argument("--no-qr", action="store_true", help=words("serve.help.no_qr"))
    p.set_defaults(func=cmd_app)


def app_environment(args: argparse.Namespace, base: dict | None = None) -> dict[str, str]:
    """The environment of the app's process: ``base`` (default: this one) and the options' settings."""
    env = dict(os.environ if base is None else base)
    env["TEACHKIT_UPLOAD_MAX_MB"] = str(args.upload_mb)
    if args.data_root:
        root = Path(args.data_root).expanduser()
        if not root.is_dir():
            raise AppError("serve.data_root_missing", path=str(root))
        env["TEACHKIT_DATA_ROOT"] = str(root.resolve())
        if root.resolve() in (Path(root.resolve().anchor), Path.home().resolve()):
            print(text("serve.data_root_wide", path=env["TEACHKIT_DATA_ROOT"]), file=sys.stderr)
    if getattr(args, "lang", None):  # the pages open in --lang without ?lang= in their address
        env["TEACHKIT_LANG"] = args.lang
    if args.demo_seconds is not None:
        env["TEACHKIT_DEMO_SECONDS"] = str(args.demo_seconds)
    return env


def check_port_free(port: int, local: bool) -> None:
    """AppError (one line) when something listens on ``port`` already, before anything is printed."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        if os.name != "nt":  # as the server binds: a port left in TIME_WAIT is free (on Windows this would steal it)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1" if local else "0.0.0.0", port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise AppError("serve.port_busy", port=port) from None


def cmd_app(args: argparse.Namespace) -> int:
    env = app_environment(args)
    import importlib.util

    if importlib.util.find_spec("streamlit") is None:
        raise AppError("serve.no_streamlit")
    check_port_free(args.port, args.local)
    command = [sys.executable, "-m", "streamlit", "run", str(entry_script()),
               *streamlit_flags(args.upload_mb, args.port, args.local)]

    here = f"http://localhost:{args.port}"
    print(text("serve.starting", mb=args.upload_mb))
    print(text("serve.this_computer", url=here))
    if args.local:
        print(text("serve.local_only"))
        share = None
    else:
        urls = [f"http://{address}:{args.port}" for address in lan_addresses()]
        for url in urls:
            print(text("serve.students", url=url))
        if not urls:
            print(text("serve.no_lan"))
        share = urls[0] if urls else None
    if share and not args.no_qr and sys.stdout.isatty():
        print(text("serve.qr"))
        _print_qr(share)
    print(text("serve.stop"), flush=True)

    proc = subprocess.Popen(command, env=env)
    _stop_on_terminate()
    try:
        return proc.wait()
    except KeyboardInterrupt:  # Ctrl+C reaches Streamlit too: give it a moment to close its sessions
        try:
            proc.wait(10)
        except (subprocess.TimeoutExpired, KeyboardInterrupt, _Terminated):
            pass
    except _Terminated:  # only this process was asked: pass it on
        pass
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
    print(text("serve.stopped"))
    return 0


class _Terminated(Exception):
    """``teachkit app`` was asked to end (SIGTERM): the Streamlit process ends with it, never left behind."""


def _raise_terminated(signum, frame):
    raise _Terminated()


def _stop_on_terminate() -> None:
    import signal

    try:  # SIGTERM exists on every OS; a handler can only be set from the main thread
        signal.signal(signal.SIGTERM, _raise_terminated)
    except (ValueError, OSError, AttributeError):
        pass
