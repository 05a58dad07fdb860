#!/usr/bin/env bash
# The one command that installs everything the tests need and runs them:
#   bash tests/run.sh [extra pytest arguments]
# It installs the system packages it needs (as root, with apt-get), creates .venv with the
# project and its test dependencies, then runs ruff, mypy and pytest (inside a private
# D-Bus session with an unlocked gnome-keyring, so the OS-keyring tests use a real
# Secret Service). No display is needed: Qt runs offscreen.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(gnome-keyring dbus-x11 dbus libsecret-1-0)

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

export QT_QPA_PLATFORM=offscreen
export PYTHONDONTWRITEBYTECODE=1

echo "== ruff"
.venv/bin/ruff check bucket_chat_desktop tests benchmarks
.venv/bin/ruff format --check bucket_chat_desktop tests benchmarks
echo "== mypy"
.venv/bin/mypy bucket_chat_desktop
echo "== pytest"
exec bash tests/with-keyring.sh .venv/bin/python -m pytest "$@"
