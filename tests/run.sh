#!/usr/bin/env bash
# The one command that installs everything the tests need and runs them:
#   bash tests/run.sh [extra pytest arguments]
# It installs the system packages it needs (as root, with apt-get), creates .venv with the
# project and its test dependencies, then runs ruff, mypy and pytest (inside a private
# D-Bus session with an unlocked gnome-keyring, so the OS-keyring tests use a real
# Secret Service). No display is needed: Qt runs offscreen.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  gnome-keyring dbus-x11 dbus libsecret-1-0 desktop-file-utils appstream
  # Qt offscreen (PySide6 wheels bring Qt itself, not these system libraries) and fonts
  libgl1 libegl1 libxkbcommon0 libglib2.0-0 libfreetype6 libfontconfig1 libdbus-1-3
  fonts-dejavu-core fontconfig-config fonts-noto-color-emoji
)
# Node runs the Azure Blob emulator (azurite); Debian's is enough when none is installed.
if ! command -v npm >/dev/null 2>&1; then
  APT_PACKAGES+=(nodejs npm)
fi

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "== missing system packages (install them as root): ${missing[*]}" >&2
    exit 2
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$PY" -m venv .venv
fi
echo "== installing Python dependencies"
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

# The Azure Blob emulator for tests/integration: azurite from npm, pinned by the lock file,
# installed into tests/integration/node/node_modules (git-ignored). Skipped when that lock
# file was already installed.
NODE_DIR=tests/integration/node
lock_sum=$(sha256sum "$NODE_DIR/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$NODE_DIR/node_modules/.installed-lock" 2>/dev/null)" != "$lock_sum" ]; then
  echo "== installing the Azure Blob emulator (npm ci)"
  npm ci --prefix "$NODE_DIR" --no-audit --no-fund --loglevel=error
  echo "$lock_sum" >"$NODE_DIR/node_modules/.installed-lock"
fi

export QT_QPA_PLATFORM=offscreen
# Bytecode is cached (git-ignored __pycache__): every `bucket-chat` and app process the
# tests start would otherwise compile the package again, about 0.3 s a start. A caller's
# PYTHONDONTWRITEBYTECODE would keep every changed module's cache stale for ever (each
# process then compiles it again), so it is not passed on.
unset PYTHONDONTWRITEBYTECODE

echo "== ruff"
.venv/bin/ruff check bucket_chat_desktop tests benchmarks resources installer
.venv/bin/ruff format --check bucket_chat_desktop tests benchmarks resources installer
echo "== mypy"
.venv/bin/mypy bucket_chat_desktop
echo "== pytest"
# Two workers a core (the tests mostly wait on emulators and child processes), at most 4
# (each starts its own emulators): 2 cores run 4, the work handed out as workers free up. Tests that use the one Secret Service (some lock it)
# run one at a time (marked "keyring": tests/conftest.py). Arguments given here come
# after, so "-n 0" runs everything in turn.
cores=$(nproc 2>/dev/null || echo 1)
workers=$((cores * 2 > 4 ? 4 : cores * 2))
exec bash tests/with-keyring.sh .venv/bin/python -m pytest -n "$workers" --dist worksteal "$@"
