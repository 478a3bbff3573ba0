"""The committed tracker build is the one the source produces, and it stays within budget."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import pytest

TRACKER_JS = Path(__file__).resolve().parents[1] / "tracker-js"
COMMITTED = TRACKER_JS / "dist" / "p.js"
BUDGET_GZIP_BYTES = 1024


def _build(outdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is missing: the test command checks for it (make test)")
    if not (TRACKER_JS / "node_modules" / "esbuild").is_dir():
        pytest.fail("tracker-js has no node_modules: the test command runs npm ci there (make test)")
    return subprocess.run(
        [node, "build.mjs", f"--outdir={outdir}", *args],
        cwd=TRACKER_JS,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_committed_build_is_current_and_within_budget(tmp_path: Path) -> None:
    result = _build(tmp_path)
    assert result.returncode == 0, result.stderr
    built = (tmp_path / "p.js").read_bytes()
    assert built == COMMITTED.read_bytes(), "tracker-js/dist/p.js is stale: run `npm run build` in tracker-js"
    assert len(gzip.compress(built, compresslevel=9)) <= BUDGET_GZIP_BYTES
    assert all(word in result.stdout for word in ("raw", "gzip", "brotli"))


def test_build_over_budget_fails(tmp_path: Path) -> None:
    result = _build(tmp_path, "--budget=500")
    assert result.returncode == 1
    assert "over the budget of 500 B" in result.stderr


def test_features_left_out_leave_no_code_behind(tmp_path: Path) -> None:
    result = _build(tmp_path, "--without=spa,engagement,outbound")
    assert result.returncode == 0, result.stderr
    trimmed = (tmp_path / "p.js").read_text()
    assert len(trimmed) < len(COMMITTED.read_text())
    for gone in ("pushState", "engagement", "outbound"):
        assert gone not in trimmed
    assert "download" in trimmed


def test_trimmed_build_never_overwrites_the_served_one() -> None:
    node = shutil.which("node") or "node"
    result = subprocess.run(
        [node, "build.mjs", "--without=spa"], cwd=TRACKER_JS, capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "needs its own --outdir" in result.stderr
