"""The app's Streamlit server on 127.0.0.1 for the tests and the load benchmark: one home for starting it
and waiting for its health, and for talking to it as a browser tab does (:class:`Tab`: Streamlit's own
websocket protocol, no browser)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

#: the browser of the real-browser tests (Debian's chromium; .ci/run installs it)
CHROMIUM = "/usr/bin/chromium"


def need_browser() -> None:
    """Skip a test that needs Chromium and Playwright where they are missing -- or fail it, with
    TEACHKIT_REQUIRE_BROWSER=1 (CI), where the browser tests must run."""
    import importlib.util
    import os

    import pytest

    def missing(reason: str) -> None:
        if os.environ.get("TEACHKIT_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{reason} (TEACHKIT_REQUIRE_BROWSER=1, so the browser tests must run)")
        pytest.skip(reason)

    if not Path(CHROMIUM).is_file():
        missing(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    if importlib.util.find_spec("playwright") is None:
        missing("Playwright for Python is not installed (pip install playwright)")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_healthy(url: str, proc, seconds: float = 60.0) -> bool:
    """Poll the local server's ``/_stcore/health`` until it answers ok (True), or until ``proc`` exits
    or ``seconds`` pass (False).  Only ever asks the loopback server at ``url``."""
    deadline = time.time() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return True
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            return False
        time.sleep(0.2)


#: the app's entry script in this checkout
APP = str(Path(__file__).resolve().parents[1] / "app.py")


class Server:
    """A started server: its address, its process and the file its output goes to."""

    def __init__(self, url: str, proc, log: Path, out):
        self.url, self.proc, self.log, self._out = url, proc, log, out

    def log_text(self) -> str:
        self._out.flush()
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        """Terminate, then kill what does not end in 10 s; close the log."""
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._out.close()


def start_server(command, *, cwd, env: dict, log: Path, seconds: float = 90.0) -> Server:
    """Start ``command(port)`` (a list of arguments for a free port) in ``cwd`` and wait until it answers
    on 127.0.0.1; a server that does not start fails the test with the end of its log."""
    import pytest

    port = free_port()
    out = open(log, "w")
    proc = subprocess.Popen(command(port), cwd=cwd, env=dict(env, PYTHONUNBUFFERED="1"), stdout=out,
                            stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", proc, Path(log), out)
    if not wait_until_healthy(server.url, proc, seconds):
        server.stop()
        pytest.fail(f"the server did not start:\n{server.log.read_text(errors='replace')[-3000:]}")
    return server


def start_app(flags: list[str], *, cwd, env: dict, log: Path, app: str = APP) -> Server:
    """``streamlit run APP FLAGS`` on 127.0.0.1 at a free port (headless)."""
    def command(port: int) -> list[str]:
        return [sys.executable, "-m", "streamlit", "run", app, *flags, "--server.address", "127.0.0.1",
                "--server.port", str(port), "--server.headless", "true"]

    return start_server(command, cwd=cwd, env=env, log=log)


@contextmanager
def serve_app(flags: list[str], *, cwd, env: dict, log: Path, app: str = APP):
    """:func:`start_app`, stopped afterwards."""
    server = start_app(flags, cwd=cwd, env=env, log=log, app=app)
    try:
        yield server
    finally:
        server.stop()


def launch_chromium(playwright):
    """Headless Chromium as every browser test starts it."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])


def loopback_only(route) -> None:
    """Route handler: the browser talks to the local server only (the app's icons would otherwise be
    fetched from the web)."""
    if route.request.url.startswith(("http://127.0.0.1:", "ws://127.0.0.1:")):
        route.continue_()
    else:
        route.abort()


# ---- a browser tab without a browser: Streamlit's own protocol ---------------------------------------
#
# What a browser tab does, at the level of the messages (the protobuf classes inside the streamlit
# package): it loads the page over HTTP (which sets the XSRF cookie, the same for every tab of one
# browser), opens the websocket /_stcore/stream with the sub-protocols ["streamlit", <that cookie>],
# and asks for a script run with a BackMsg ``rerun_script`` (a ClientState: the query string, the page,
# the widget values).  The server answers with ForwardMsgs: ``new_session`` when a full run starts,
# ``delta`` per element, ``script_finished``; ``auto_rerun`` asks the tab to rerun a fragment every few
# seconds (lesson 6's progress); ``file_urls_response`` gives the addresses to PUT an upload to.
# Images arrive as media addresses, fetched over HTTP like a browser does.


class PageRun:
    """The timings of one script run that a tab asked for (seconds since the request was sent)."""

    def __init__(self, sent: float):
        self.sent = sent
        self.first_element: float | None = None  #: first element of the page itself (its title)
        self.finished: float | None = None  #: "script finished"
        self.complete: float | None = None  #: finished, and every image it references fetched
        self.status: str = "timeout"
        self.media_bytes = 0
        self.elements: dict = {}  #: the page as it was when its run finished

    def seconds(self, what: str) -> float | None:
        value = getattr(self, what)
        return None if value is None else value - self.sent


class Tab:
    """One browser tab, speaking Streamlit's websocket protocol (asyncio; needs the ``websockets`` package).

    ``jar`` holds the tab's cookies; give two tabs one jar and they are two tabs of one browser.
    Only ever talks to the local server at ``url``.
    """

    def __init__(self, url: str, *, lang: str = "en", jar: dict | None = None):
        self.url = url
        self.lang = lang
        self.jar = jar if jar is not None else {}
        self.session_id: str | None = None
        self.pages: dict[str, str] = {}  # url path -> page_script_hash
        self.page_hash = ""
        self.elements: dict[tuple, object] = {}  # delta path -> Element (the page as drawn now)
        self.widgets: dict[str, object] = {}  # widget id -> its WidgetState to send (what the user set)
        self.fragments: dict[str, float] = {}  # fragment id -> auto-rerun interval
        self.runs_started = 0
        self.runs_finished = 0
        self._first_main: dict[int, float] = {}
        self._finished_at: dict[int, float] = {}
        self._url_answers: dict[str, object] = {}
        self._changed = None
        self._ws = None
        self._tasks: list = []
        self.closed = False
        self.messages = 0

    # -- plumbing --

    def _http(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
              timeout: float = 60.0) -> tuple[int, bytes]:
        import urllib.error

        req = urllib.request.Request(self.url + path, data=body, method=method, headers=dict(headers or {}))
        if self.jar:
            req.add_header("Cookie", "; ".join(f"{k}={v}" for k, v in self.jar.items()))
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                for value in r.headers.get_all("Set-Cookie") or []:
                    name, _, rest = value.partition("=")
                    self.jar[name.strip()] = rest.split(";", 1)[0]
                return r.status, r.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    async def http(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                   timeout: float = 60.0) -> tuple[int, bytes]:
        import asyncio

        return await asyncio.to_thread(self._http, method, path, body, headers, timeout)

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    async def _wait(self, cond, timeout: float) -> bool:
        import asyncio

        deadline = time.monotonic() + timeout
        while not cond():
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                return bool(cond())
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(left, 1.0))
            except asyncio.TimeoutError:
                pass
        return True

    async def _reader(self) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        try:
            async for raw in self._ws:
                msg = ForwardMsg()
                msg.ParseFromString(raw)
                self.messages += 1
                self._handle(msg, time.perf_counter())
                self._notify()
        except Exception:  # noqa: BLE001 - the connection ended; whoever waits sees `closed`
            pass
        finally:
            self.closed = True
            self._notify()

    def _handle(self, msg, now: float) -> None:
        kind = msg.WhichOneof("type")
        if kind == "new_session":
            ns = msg.new_session
            self.session_id = ns.initialize.session_id or self.session_id
            self.runs_started += 1
            self.elements = {}
        elif kind == "navigation":
            for p in msg.navigation.app_pages:
                self.pages[p.url_pathname] = p.page_script_hash
            self.page_hash = msg.navigation.page_script_hash or self.page_hash
        elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            path = tuple(msg.metadata.delta_path)
            self.elements[path] = msg.delta.new_element
            if path and path[0] == 0 and not msg.delta.fragment_id:
                self._first_main.setdefault(self.runs_started, now)
        elif kind == "script_finished":
            status = ForwardMsgStatus.name(msg.script_finished)
            if status in ("FINISHED_SUCCESSFULLY", "FINISHED_WITH_COMPILE_ERROR"):
                self.runs_finished = self.runs_started
                self._finished_at[self.runs_started] = now
        elif kind == "auto_rerun":
            self.fragments[msg.auto_rerun.fragment_id] = msg.auto_rerun.interval
        elif kind == "stop_auto_rerun":
            for fid in msg.stop_auto_rerun.fragment_ids:
                self.fragments.pop(fid, None)
        elif kind == "file_urls_response":
            self._url_answers[msg.file_urls_response.response_id] = msg.file_urls_response

    async def _auto_reruns(self) -> None:
        """The browser's timer: every fragment the server asked for is rerun at its interval."""
        import asyncio

        last: dict[str, float] = {}
        while not self.closed:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            for fid, interval in list(self.fragments.items()):
                if now - last.get(fid, 0.0) >= interval:
                    last[fid] = now
                    try:
                        await self._send_rerun(fragment_id=fid, auto=True)
                    except Exception:  # noqa: BLE001 - closed meanwhile
                        return

    # -- what a student does --

    async def open(self, path: str = "", timeout: float = 120.0) -> PageRun:
        """Load the page (cookies), connect, and run the page at ``path`` ('' = the default page)."""
        import asyncio

        from websockets.asyncio.client import connect

        self._changed = asyncio.Event()
        await self.http("GET", "/" + path)  # the page (a browser then loads the scripts it names)
        await self.http("GET", "/_stcore/health")  # as the frontend does first: it sets the XSRF cookie
        token = self.jar.get("_streamlit_xsrf", "")
        protocols = ["streamlit", token] if token else ["streamlit"]
        cookie = "; ".join(f"{k}={v}" for k, v in self.jar.items())
        ws_url = "ws" + self.url[len("http"):] + "/_stcore/stream"
        self._ws = await connect(ws_url, subprotocols=protocols, max_size=None, open_timeout=timeout,
                                 additional_headers={"Cookie": cookie} if cookie else None,
                                 ping_interval=None)
        self._tasks = [asyncio.ensure_future(self._reader()), asyncio.ensure_future(self._auto_reruns())]
        return await self.rerun(page_name=path, timeout=timeout)

    async def _send_rerun(self, *, page_name: str = "", fragment_id: str = "", auto: bool = False,
                          triggers: tuple = ()) -> None:
        from streamlit.proto.BackMsg_pb2 import BackMsg

        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string = f"lang={self.lang}"
        cs.page_script_hash = self.page_hash if not page_name else self.pages.get(page_name, "")
        if page_name and not cs.page_script_hash:
            cs.page_name = page_name
        cs.fragment_id = fragment_id
        cs.is_auto_rerun = auto
        for state in self.widgets.values():
            cs.widget_states.widgets.add().CopyFrom(state)
        for wid in triggers:
            w = cs.widget_states.widgets.add()
            w.id, w.trigger_value = wid, True
        await self._ws.send(msg.SerializeToString())

    async def rerun(self, *, page_name: str = "", triggers: tuple = (), timeout: float = 120.0,
                    fetch_media: bool = True) -> PageRun:
        """Ask for a full run (optionally of another page, with buttons pressed) and time it."""
        run = PageRun(time.perf_counter())
        before = self.runs_started
        if page_name:
            self.widgets = {}  # a page's widgets are its own
            self.page_hash = self.pages.get(page_name, self.page_hash)
        await self._send_rerun(page_name=page_name, triggers=triggers)
        ok = await self._wait(lambda: self.runs_finished > before and self.runs_finished == self.runs_started,
                              timeout)
        n = self.runs_started
        run.first_element = self._first_main.get(n) if n > before else None
        if ok and n > before:
            run.finished, run.status = self._finished_at.get(n), "finished"
            run.elements = dict(self.elements)  # a rerun the server starts itself may follow at once
            if fetch_media:
                await self.fetch_media(run)
            run.complete = time.perf_counter()
        elif self.closed:
            run.status = "closed"
        return run

    async def fetch_media(self, run: PageRun | None = None) -> int:
        """Fetch every image the page references now, as a browser does; returns the bytes."""
        import asyncio

        urls = {img.url for e in list(self.elements.values()) if e.WhichOneof("type") == "imgs"
                for img in e.imgs.imgs if img.url.startswith("/")}
        answers = await asyncio.gather(*(self.http("GET", u) for u in sorted(urls)))
        size = sum(len(body) for status, body in answers if status == 200)
        if run is not None:
            run.media_bytes = size
        return size

    def widget(self, key: str):
        """The element of the widget with user key ``key`` on the page as drawn now (or None)."""
        for e in self.elements.values():
            inner = getattr(e, e.WhichOneof("type") or "", None)
            wid = getattr(inner, "id", "")
            if isinstance(wid, str) and wid.endswith("-" + key):
                return inner
        return None

    async def press(self, key: str, timeout: float = 120.0, fetch_media: bool = True) -> PageRun:
        w = self.widget(key)
        if w is None:
            raise LookupError(f"no widget {key!r} on the page")
        return await self.rerun(triggers=(w.id,), timeout=timeout, fetch_media=fetch_media)

    async def set_slider(self, key: str, value, timeout: float = 120.0) -> PageRun:
        """Move a slider (a number) or a select slider (one of its shown options) and time the run."""
        from streamlit.proto.WidgetStates_pb2 import WidgetState

        w = self.widget(key)
        if w is None:
            raise LookupError(f"no widget {key!r} on the page")
        state = WidgetState(id=w.id)
        if len(w.options):
            state.string_array_value.data.append(str(value))
        else:
            state.double_array_value.data.append(float(value))
        self.widgets[w.id] = state
        return await self.rerun(timeout=timeout)

    async def upload(self, key: str, files: list[tuple[str, bytes, str]], timeout: float = 120.0,
                     rerun: bool = True) -> tuple[list[int], PageRun | None]:
        """Put files into the uploader ``key`` as the browser does (ask for URLs, PUT each with the
        XSRF header, then rerun with the uploader's new state).  Returns the PUT statuses and the run."""
        from streamlit.proto.WidgetStates_pb2 import WidgetState

        w = self.widget(key)
        if w is None:
            raise LookupError(f"no widget {key!r} on the page")
        statuses, infos = [], []
        for name, data, mime in files:
            urls = await self.file_urls([name], timeout)
            u = urls[0]
            statuses.append(await self.put_file(u.upload_url, name, data, mime))
            infos.append((name, len(data), u))
        if not rerun:
            return statuses, None
        state = WidgetState(id=w.id)
        for (name, size, u), status in zip(infos, statuses):
            if status in (200, 204):
                info = state.file_uploader_state_value.uploaded_file_info.add()
                info.name, info.size, info.file_id = name, size, u.file_id
                info.file_urls.CopyFrom(u)
        self.widgets[w.id] = state
        return statuses, await self.rerun(timeout=timeout)

    async def file_urls(self, names: list[str], timeout: float = 60.0):
        """Upload addresses from the server (BackMsg file_urls_request)."""
        import secrets

        from streamlit.proto.BackMsg_pb2 import BackMsg

        rid = secrets.token_hex(8)
        msg = BackMsg()
        msg.file_urls_request.request_id = rid
        msg.file_urls_request.session_id = self.session_id or ""
        msg.file_urls_request.file_names.extend(names)
        await self._ws.send(msg.SerializeToString())
        await self._wait(lambda: rid in self._url_answers, timeout)
        return list(self._url_answers.pop(rid).file_urls)

    async def put_file(self, upload_url: str, name: str, data: bytes, mime: str = "image/png") -> int:
        """PUT one file (multipart, as the browser sends it) to an upload address; the HTTP status."""
        import secrets

        boundary = "----teachkit" + secrets.token_hex(8)
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
                f"Content-Type: {mime}\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}",
                   "X-Xsrftoken": self.jar.get("_streamlit_xsrf", "")}
        status, _ = await self.http("PUT", upload_url, body, headers)
        return status

    # -- what the page shows --

    def texts(self, kind: str, elements: dict | None = None) -> list[str]:
        """The bodies of the elements of one kind now on the page ('heading', 'alert', 'exception', ...),
        or in ``elements`` (a :class:`PageRun`'s)."""
        out = []
        for e in (self.elements if elements is None else elements).values():
            if e.WhichOneof("type") == kind:
                inner = getattr(e, kind)
                out.append(getattr(inner, "body", "") or getattr(inner, "message", ""))
        return out

    def errors(self, elements: dict | None = None) -> list[str]:
        """Error boxes and exceptions now on the page (or in ``elements``, a :class:`PageRun`'s)."""
        out = []
        for e in (self.elements if elements is None else elements).values():
            kind = e.WhichOneof("type")
            if kind == "exception":
                out.append(f"exception {e.exception.type}: {e.exception.message[:200]}")
            elif kind == "alert" and e.alert.format == 1:  # Alert.ERROR
                out.append(e.alert.body[:200])
        return out

    async def close(self) -> None:
        self.closed = True
        for t in self._tasks:
            t.cancel()
        if self._ws is not None:
            try:
                await self._ws.close()
            except Exception:  # noqa: BLE001
                pass


class _Status:
    @staticmethod
    def name(value: int) -> str:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        return ForwardMsg.ScriptFinishedStatus.Name(value)


ForwardMsgStatus = _Status
