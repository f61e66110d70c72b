"""Starting the app's Streamlit server on 127.0.0.1 for the browser tests and the load benchmark: one home."""

from __future__ import annotations

import socket
import time
import urllib.request


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
        time.sleep(0.3)
