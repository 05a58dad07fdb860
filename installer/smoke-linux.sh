#!/usr/bin/env bash
# Check what installer/build-linux.sh built, without installing anything:
#
#   bash installer/smoke-linux.sh [--install]
#
# 1. the frozen folder: `bucket-chat-desktop --smoke` (Qt offscreen, main window, local
#    store, PyNaCl, keyring backend, fsspec backends; inside a private Secret Service when
#    tests/with-keyring.sh can start one, which must then be the backend in use), both
#    executables' --version against pyproject.toml, the copied package metadata;
# 2. the frozen client against S3, GCS and Azure emulators when they are installed
#    (installer/check_frozen_storage.py; SMOKE_REQUIRE_EMULATORS=1 makes them mandatory);
# 3. the .deb: its control file and contents, then unpacked with `dpkg -x` into a scratch
#    root, whose /usr/bin launchers must run the app from that root: --smoke and --version;
#    the desktop entry validates and points at the launcher and icon the package ships.
# With --install (throw-away machines only, as root): apt-get installs the .deb for real,
# runs the installed commands and removes the package again.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
VENV=${BUILD_VENV:-.venv}
BUNDLE=dist/bucket-chat
INSTALL=0
[ "${1:-}" = "--install" ] && INSTALL=1

fail() {
  echo "smoke-linux: FAIL: $*" >&2
  exit 1
}
# Each step either completes or stops the script with FAIL.
steps=0
step() {
  steps=$((steps + 1))
  echo "== $*"
}

[ -x "$BUNDLE/bucket-chat-desktop" ] || fail "no $BUNDLE: run installer/build-linux.sh first"
shopt -s nullglob
debs=(dist/bucket-chat-desktop_*.deb)
((${#debs[@]} == 1)) || fail "expected one dist/bucket-chat-desktop_*.deb, found ${#debs[@]}"
deb=${debs[0]}
version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' pyproject.toml | head -1)
[ -n "$version" ] || fail "no version in pyproject.toml"
export QT_QPA_PLATFORM=offscreen
scratch=$(mktemp -d "${TMPDIR:-/tmp}/bucket-chat-smoke.XXXXXXXX")
trap 'rm -rf "$scratch"' EXIT
export BUCKET_CHAT_HOME="$scratch/home"

# run_smoke LABEL COMMAND...: the app's --smoke, printed, must pass.
run_smoke() {
  local label=$1
  shift
  local t0 ms out
  t0=$(date +%s%N)
  if ! out=$("$@" --smoke 2>&1); then
    echo "$out"
    fail "$label --smoke"
  fi
  ms=$((($(date +%s%N) - t0) / 1000000))
  printf '   %s\n' "${out//$'\n'/$'\n'   }"
  printf '   (%s --smoke: %d.%03d s)\n' "$label" $((ms / 1000)) $((ms % 1000))
  SMOKE_OUT=$out
}

step "frozen folder: bucket-chat-desktop --smoke"
if [ -x tests/with-keyring.sh ] && command -v gnome-keyring-daemon >/dev/null \
  && command -v dbus-run-session >/dev/null; then
  # The smoke itself fails unless this exact backend answers.
  BUCKET_CHAT_SMOKE_KEYRING=keyring.backends.SecretService.Keyring \
    run_smoke "frozen (with a Secret Service)" tests/with-keyring.sh "$BUNDLE/bucket-chat-desktop"
  grep -q "keyring backend.*usable: SecretService" <<<"$SMOKE_OUT" \
    || fail "the frozen app does not use the Secret Service it was given"
else
  echo "   (no gnome-keyring here: the keyring check runs without a Secret Service)"
  run_smoke "frozen" "$BUNDLE/bucket-chat-desktop"
fi
# Bytes with LF, CR, NUL and ^Z written through the local storage, a blob, the caches and
# a key file come back with their SHA-256 (on Windows this catches a text-mode write).
grep -q "^ok   binary files" <<<"$SMOKE_OUT" || fail "the smoke did not check binary files"

step "frozen folder: versions and metadata"
[ "$("$BUNDLE/bucket-chat" --version)" = "bucket-chat $version" ] \
  || fail "bucket-chat --version says '$("$BUNDLE/bucket-chat" --version)', pyproject.toml $version"
[ "$("$BUNDLE/bucket-chat-desktop" --version)" = "bucket-chat-desktop $version" ] \
  || fail "bucket-chat-desktop --version does not say $version"
# importlib.metadata reads the version from the copied metadata (a .dist-info, or the
# .egg-info that an editable install leaves in the source tree, whichever was found).
meta=$(find "$BUNDLE/_internal" -maxdepth 2 \( -path '*/bucket_chat_desktop-*.dist-info/METADATA' \
  -o -path '*/bucket_chat_desktop.egg-info/PKG-INFO' \) | head -1)
[ -n "$meta" ] || fail "no bucket-chat-desktop metadata in the bundle: importlib.metadata would fail"
grep -qx "Version: $version" "$meta" || fail "$meta does not say Version: $version"
compgen -G "$BUNDLE/_internal/keyring-*.dist-info/METADATA" >/dev/null || fail "no keyring metadata"
grep -q '^SecretService = keyring.backends.SecretService' \
  "$BUNDLE"/_internal/keyring-*.dist-info/entry_points.txt || fail "keyring entry points missing"
[ -f "$BUNDLE/_internal/resources/icons/bucket-chat-256.png" ] || fail "window icon missing"
echo "   bucket-chat $version, bucket-chat-desktop $version; metadata, entry points, icon present"

step "frozen bucket-chat against storage emulators"
if [ -x "$VENV/bin/python" ]; then
  req=()
  [ "${SMOKE_REQUIRE_EMULATORS:-0}" = 1 ] && req=(--require)
  "$VENV/bin/python" installer/check_frozen_storage.py "$BUNDLE/bucket-chat" "${req[@]}" \
    | sed 's/^/   /'
  ((PIPESTATUS[0] == 0)) || fail "a storage backend does not work frozen"
else
  echo "   skipped: no $VENV to run the emulators from"
fi

step "package: $deb"
dpkg-deb --info "$deb" control >"$scratch/control"
grep -q "^Package: bucket-chat-desktop$" "$scratch/control" || fail "control: wrong Package"
grep -q "^Version: ${version//./\\.}" "$scratch/control" || fail "control: Version is not $version"
grep -q "^Depends: .*libgl1" "$scratch/control" || fail "control: Depends lacks the system libraries"
dpkg-deb --contents "$deb" >"$scratch/contents"
for path in ./opt/bucket-chat/bucket-chat-desktop ./opt/bucket-chat/bucket-chat \
  ./usr/bin/bucket-chat ./usr/bin/bucket-chat-desktop \
  ./usr/share/applications/bucket-chat-desktop.desktop \
  ./usr/share/metainfo/io.github.bucketchat.BucketChat.metainfo.xml \
  ./usr/share/icons/hicolor/256x256/apps/bucket-chat-desktop.png \
  ./usr/share/doc/bucket-chat-desktop/copyright; do
  grep -q " $path\$" "$scratch/contents" || fail "$path is not in the package"
done
if grep -v ' root/root ' "$scratch/contents" | grep -q .; then
  fail "files not owned by root in the package"
fi
sed -n 's/^Depends: /   Depends: /p' "$scratch/control"

step "package unpacked with dpkg -x into a scratch root"
root="$scratch/root"
dpkg -x "$deb" "$root"
run_smoke "unpacked /usr/bin/bucket-chat-desktop" "$root/usr/bin/bucket-chat-desktop"
[ "$("$root/usr/bin/bucket-chat" --version)" = "bucket-chat $version" ] \
  || fail "unpacked /usr/bin/bucket-chat --version"
[ "$(BUCKET_CHAT_APPDIR="$root/opt/bucket-chat" "$root/usr/bin/bucket-chat-desktop" --version)" \
  = "bucket-chat-desktop $version" ] || fail "launcher with BUCKET_CHAT_APPDIR"
desktop="$root/usr/share/applications/bucket-chat-desktop.desktop"
if command -v desktop-file-validate >/dev/null; then
  desktop-file-validate "$desktop" || fail "desktop entry does not validate"
fi
exec_name=$(sed -n 's/^Exec=\([^ ]*\).*/\1/p' "$desktop" | head -1)
icon_name=$(sed -n 's/^Icon=//p' "$desktop")
[ -x "$root/usr/bin/$exec_name" ] || fail "desktop entry runs $exec_name, which the package lacks"
[ -f "$root/usr/share/icons/hicolor/48x48/apps/$icon_name.png" ] || fail "no icon $icon_name"
if command -v appstreamcli >/dev/null; then
  appstreamcli validate --no-net --explain \
    "$root/usr/share/metainfo/io.github.bucketchat.BucketChat.metainfo.xml" >/dev/null \
    || fail "AppStream metadata does not validate"
fi
echo "   /usr/bin launchers run the unpacked /opt/bucket-chat; desktop entry, icons, metainfo ok"

if ((INSTALL)); then
  step "installing the package with apt-get (--install)"
  [ "$(id -u)" = 0 ] || fail "--install needs root"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "./$deb" >/dev/null
  [ "$(/usr/bin/bucket-chat --version)" = "bucket-chat $version" ] || fail "installed bucket-chat --version"
  run_smoke "installed bucket-chat-desktop" /usr/bin/bucket-chat-desktop
  apt-get remove -y -qq bucket-chat-desktop >/dev/null
  [ ! -e /opt/bucket-chat ] || fail "/opt/bucket-chat is left after removing the package"
  echo "   installed, ran and removed cleanly"
fi

echo "smoke-linux: every check passed in $(($(date +%s) - started)) s"
# The closing line in the plain "N passed, N failed" form that CI logs are read for.
echo "smoke-linux: $steps passed, 0 failed"
