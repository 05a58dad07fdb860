#!/usr/bin/env bash
# THE command to build Bucket Chat Desktop for Linux:
#
#   bash installer/build-linux.sh
#
# Produces, in dist/:
#   bucket-chat/                                 the one-folder bundle (both executables)
#   bucket-chat-desktop_<version>-1_<arch>.deb   the Debian/Ubuntu package
# and prints their sizes and the build time. Check them with installer/smoke-linux.sh.
#
# On Debian/Ubuntu as root it installs the system packages it needs with apt-get (the Qt
# libraries found here are the ones that get bundled, so they must be present). It uses
# .venv (or $BUILD_VENV), creating it with python3.11 if missing, installs the app and
# installer/requirements-build.txt into it, then runs PyInstaller on build.spec and
# installer/linux/build-deb.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)

# Bundled by PyInstaller when present (Qt's xcb platform plugin and its helpers), or
# needed to build and check the package.
APT_PACKAGES=(
  binutils desktop-file-utils
  libgl1 libegl1 libfontconfig1 libfreetype6 libdbus-1-3 libglib2.0-0
  libxkbcommon0 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1
  libxcb-shape0 libxcb-render-util0 libxcb-image0 libxcb-randr0 libxcb-xfixes0
  libxcb-sync1 libxcb-shm0 libxcb-xkb1 libxcb-glx0 libx11-xcb1
  libwayland-client0 libwayland-cursor0 libwayland-egl1
  fonts-dejavu-core
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "build-linux: missing system packages (install them as root): ${missing[*]}" >&2
    exit 2
  fi
fi

VENV=${BUILD_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating $VENV"
  "${PYTHON:-python3.11}" -m venv "$VENV"
fi
echo "== installing the app and PyInstaller into $VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e . -r installer/requirements-build.txt

echo "== PyInstaller (build.spec)"
t0=$(date +%s)
rm -rf dist/bucket-chat build/pyinstaller
mkdir -p build
if ! "$VENV/bin/python" -m PyInstaller --noconfirm --log-level WARN \
  --distpath dist --workpath build/pyinstaller build.spec >build/pyinstaller.log 2>&1; then
  tail -n 40 build/pyinstaller.log >&2
  echo "build-linux: PyInstaller failed; full log: build/pyinstaller.log" >&2
  exit 1
fi
t1=$(date +%s)

echo "== Debian package"
deb=$(bash installer/linux/build-deb.sh dist/bucket-chat dist)
t2=$(date +%s)

human() { numfmt --to=iec-i --suffix=B --format=%.1f "$1"; }
bundle_bytes=$(du -sb dist/bucket-chat | cut -f1)
deb_bytes=$(stat -c %s "$deb")
echo
echo "bundle   dist/bucket-chat/  $(human "$bundle_bytes")  ($(find dist/bucket-chat -type f | wc -l) files)"
echo "package  $deb  $(human "$deb_bytes")"
echo "time     PyInstaller $((t1 - t0)) s, .deb $((t2 - t1)) s, total $((t2 - started)) s"
