"""The built tracker (tracker-js/dist/p.js): its bytes, names and digests, computed once.

The collector serves it and the dashboard prints the snippets that load it; both read
this one object, so the pinned URL the dashboard prints is always one the collector
answers, and its SRI hash always matches the bytes served.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
from functools import cache
from pathlib import Path

import msgspec

from pulse.oltp.accounts import VisitorMode


class TrackerAsset(msgspec.Struct, frozen=True):
    body: bytes
    gzipped: bytes
    etag: str
    # p.<content hash>.js: a new build gets a new name, so this one may be cached for good.
    versioned_name: str
    integrity: str


class Snippets(msgspec.Struct, frozen=True):
    latest: str
    pinned: str


# The build is part of the release, so one read per process is enough.
@cache
def load_tracker(path: Path) -> TrackerAsset:
    body = path.read_bytes()
    digest = hashlib.sha256(body).hexdigest()
    return TrackerAsset(
        body=body,
        # mtime=0 keeps the compressed bytes a pure function of the script.
        gzipped=gzip.compress(body, compresslevel=9, mtime=0),
        etag=f'"{digest[:16]}"',
        versioned_name=f"p.{digest[:16]}.js",
        integrity="sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode(),
    )


def snippets(
    tracker: TrackerAsset, collector_url: str, site_id: str, visitor_mode: VisitorMode = "cookieless"
) -> Snippets:
    """The one-line snippet that follows upgrades, and the pinned one a strict CSP can trust.

    A site in cookie mode gets data-visitor="cookie": the tracker then keeps a first-party id.
    """
    visitor = ' data-visitor="cookie"' if visitor_mode == "cookie" else ""
    tag = f'<script defer data-site="{site_id}"{visitor} src="{collector_url}'
    return Snippets(
        latest=f'{tag}/p.js"></script>',
        pinned=f'{tag}/{tracker.versioned_name}" integrity="{tracker.integrity}" crossorigin="anonymous"></script>',
    )
