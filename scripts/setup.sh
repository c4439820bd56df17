#!/usr/bin/env bash
# Set up everything napari-cellseg needs, idempotently: Debian's X/GL libraries
# (where we are root on Debian), a virtual environment in .venv, and the package.
# A second run reuses what the first installed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
APT_PACKAGES="xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-randr0 libxcb-render-util0 \
libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxcb-cursor0 libxkbcommon-x11-0 libgl1 libegl1 \
libdbus-1-3 libfontconfig1 libglib2.0-0"

install_system_packages() {
  command -v dpkg >/dev/null 2>&1 || return 0
  local missing=()
  for p in $APT_PACKAGES; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: please install these Debian packages: ${missing[*]}" >&2
    return 0
  fi
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_python_packages() {
  local stamp="$VENV/.napari-cellseg-installed"
  local want
  want=$(cat pyproject.toml requirements/constraints.txt scripts/setup.sh | sha256sum | cut -c1-16)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  echo "setup: installing Python packages into $VENV (first run: a few minutes)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # torch and torchvision are pinned to the builds on this machine's disk (no download).
  "$VENV/bin/python" -m pip install -q -c requirements/constraints.txt \
    torch==2.14.1 torchvision==0.29.1 -e ".[pyqt6,testing]"
  echo "$want" >"$stamp"
}

install_system_packages
install_python_packages
