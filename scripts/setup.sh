#!/usr/bin/env bash
# Installs what Pulse needs from the package registries, nothing by hand:
#   scripts/setup.sh          Python 3.12 environment with uv (for `make up`)
#   scripts/setup.sh --test   the same, plus Debian's chromium, docker-compose, prometheus and haproxy for the tests,
#                             and tracker-js's locked npm packages (the tests rebuild the tracker)
#   scripts/setup.sh --bench  the same as the first, plus Debian's wrk and haproxy for the load benchmarks
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {
  if [ -n "${PULSE_PYTHON:-}" ]; then echo "$PULSE_PYTHON"; return; fi
  if command -v pyenv >/dev/null 2>&1; then
    local p
    p="$(PYENV_VERSION="${PYENV_VERSION:-3.12.1}" pyenv which python3.12 2>/dev/null || true)"
    if [ -n "$p" ]; then echo "$p"; return; fi
  fi
  for candidate in python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
      command -v "$candidate"; return
    fi
  done
  echo "Pulse needs Python >= 3.12 (with pyenv: pyenv install 3.12); set PULSE_PYTHON to its path." >&2
  exit 1
}

PYTHON="$(find_python)"
export PATH="$HOME/.local/bin:$PATH"
if ! command -v uv >/dev/null 2>&1; then
  echo "installing uv from PyPI" >&2
  "$PYTHON" -m pip install --quiet --user uv 2>/dev/null || "$PYTHON" -m pip install --quiet uv
fi
UV="$(command -v uv || echo "$("$PYTHON" -m site --user-base)/bin/uv")"
"$UV" sync --frozen --python "$PYTHON" --quiet

# Installs the Debian packages named after $1 (what needs them) that are missing, or says which.
install_debian() {
  local purpose="$1"
  shift
  [ "$#" -gt 0 ] || return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "The $purpose need: $* (Debian packages). Install them and run again." >&2
    exit 1
  fi
  echo "installing Debian packages: $*" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
has_haproxy() { command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]; }

if [ "${1:-}" = "--test" ]; then
  missing=()
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
  command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
  has_haproxy || missing+=(haproxy)
  # The README's API examples are run as written by the suite.
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  command -v jq >/dev/null 2>&1 || missing+=(jq)
  install_debian tests "${missing[@]}"
  if ! command -v node >/dev/null 2>&1; then
    echo "The tests need Node.js >= 18 with npm, to build tracker-js. Install it and run again." >&2
    exit 1
  fi
  # stdout carries only uv's path (the Makefile reads it), so npm reports on stderr.
  (cd tracker-js && npm ci --no-audit --no-fund --loglevel=error) >&2
fi
if [ "${1:-}" = "--bench" ]; then
  missing=()
  command -v wrk >/dev/null 2>&1 || missing+=(wrk)
  has_haproxy || missing+=(haproxy)
  install_debian benchmarks "${missing[@]}"
fi
echo "$UV"
