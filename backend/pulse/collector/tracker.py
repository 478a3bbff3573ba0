"""Serves the built tracker: /p.js briefly cached, /p.<hash>.js cached for good.

/p.js is what the plain snippet loads, so a release reaches every site within minutes.
The versioned name changes whenever the bytes do, which is what lets it be immutable.
Both go precompressed to browsers that take gzip: the size budget is the gzip size.
"""

from __future__ import annotations

from pathlib import Path

from litestar import Response

from pulse.tracker_asset import TrackerAsset, load_tracker

LATEST_CACHE = "public, max-age=300"
PINNED_CACHE = "public, max-age=31536000, immutable"


class TrackerScript:
    def __init__(self, path: Path) -> None:
        self.asset: TrackerAsset = load_tracker(path)

    def response(self, if_none_match: str | None, accept_encoding: str, *, pinned: bool) -> Response[bytes]:
        gzipped = "gzip" in accept_encoding
        # Each encoding is its own representation, so each gets its own strong ETag.
        etag = self.asset.etag[:-1] + '-gzip"' if gzipped else self.asset.etag
        headers = {
            "ETag": etag,
            "Cache-Control": PINNED_CACHE if pinned else LATEST_CACHE,
            "Vary": "Accept-Encoding",
        }
        if if_none_match == etag:
            return Response(b"", status_code=304, headers=headers)
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        body = self.asset.gzipped if gzipped else self.asset.body
        return Response(body, media_type="application/javascript; charset=utf-8", headers=headers)
