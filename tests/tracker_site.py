"""A throwaway website for the tracker tests: fixture pages, the built /p.js and a beacon recorder.

It listens on 127.0.0.1 only; the browser reaches it as http://shop.test:PORT (a public
site, see CHROMIUM_ARGS) or as http://localhost:PORT (a developer's machine).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import msgspec

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "tracker"
TRACKER = ROOT / "tracker-js" / "dist" / "p.js"
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


class Recorded(msgspec.Struct, frozen=True):
    """One POST /api/event as it arrived; the event's random id `x` apart from the payload."""

    payload: dict[str, Any]
    content_type: str
    host: str
    sent_id: object = None
    status: int = HTTPStatus.ACCEPTED


class TrackerSite:
    def __init__(self) -> None:
        self._recorded: list[Recorded] = []
        self._answers: list[HTTPStatus] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, page: str, host: str = "shop.test", **params: str) -> str:
        """A fixture page; its {{name}} placeholders are filled from params."""
        query = f"?{urlencode(params)}" if params else ""
        return f"http://{host}:{self.port}/{page}{query}"

    def answer_next(self, *statuses: HTTPStatus) -> None:
        """The next beacons are answered with these statuses, then with 202 again."""
        with self._lock:
            self._answers.extend(statuses)

    def record(self, payload: dict[str, Any], content_type: str, host: str) -> HTTPStatus:
        with self._lock:
            status = self._answers.pop(0) if self._answers else HTTPStatus.ACCEPTED
            sent_id = payload.pop("x", None)
            self._recorded.append(Recorded(payload, content_type, host, sent_id, status))
            return status

    @property
    def recorded(self) -> list[Recorded]:
        with self._lock:
            return list(self._recorded)

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """Beacons the site accepted (202), so a refused one that is resent shows once."""
        return [
            r.payload
            for r in self.recorded
            if r.status == HTTPStatus.ACCEPTED and (name is None or r.payload.get("n") == name)
        ]

    async def wait_for(self, check: Callable[[], bool], timeout_s: float = 5.0) -> None:
        """Beacons arrive on the server's threads; poll until check() holds or fail."""
        deadline = time.monotonic() + timeout_s
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; recorded: {[r.payload for r in self.recorded]}")
            await asyncio.sleep(0.02)

    def clear(self) -> None:
        with self._lock:
            self._recorded.clear()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _handler(site: TrackerSite) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            fixture = FIXTURES / parts.path.lstrip("/")
            if parts.path == "/p.js":
                self._send(TRACKER.read_bytes(), "application/javascript")
            elif fixture.suffix == ".html" and fixture.is_file():
                values = dict(parse_qsl(parts.query), port=str(site.port))
                html = PLACEHOLDER.sub(lambda m: values.get(m[1], ""), fixture.read_text())
                self._send(html.encode(), "text/html; charset=utf-8")
            else:  # link targets such as /files/report.pdf
                self._send(b"file " + parts.path.encode(), "text/plain")

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = self.headers
            status = site.record(json.loads(body), headers.get("content-type", ""), headers.get("host", ""))
            answer = (
                b'{"accepted": 1}' if status == HTTPStatus.ACCEPTED else b'{"error": "refused by the test"}'
            )
            self._send(answer, "application/json", status)

        def _send(self, body: bytes, content_type: str, status: HTTPStatus = HTTPStatus.OK) -> None:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            # Revalidate every time, but stay eligible for the back/forward cache (no-store is not).
            self.send_header("cache-control", "no-cache")
            # Like the collector: any site may post beacons and read the answer.
            self.send_header("access-control-allow-origin", "*")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the tests assert on what was recorded instead."""

    return Handler
