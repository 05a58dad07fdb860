#!/usr/bin/env bash
# Package the PyInstaller folder as a Debian package, with dpkg-deb only.
#
#   installer/linux/build-deb.sh [BUNDLE_DIR [OUT_DIR]]     (defaults: dist/bucket-chat dist)
#
# Layout of the package:
#   /opt/bucket-chat/                        the frozen app (both executables, _internal/)
#   /usr/bin/bucket-chat, bucket-chat-desktop  launchers (installer/linux/launcher.sh)
#   /usr/share/applications/bucket-chat-desktop.desktop
#   /usr/share/icons/hicolor/NxN/apps/bucket-chat-desktop.png
#   /usr/share/metainfo/io.github.bucketchat.BucketChat.metainfo.xml
#   /usr/share/doc/bucket-chat-desktop/copyright
# No maintainer scripts: hicolor-icon-theme and desktop-file-utils refresh their caches
# through dpkg triggers on those folders.
#
# Before building, every shared library the bundle links against that it does not carry
# itself must come from a package listed in Depends (checked with dpkg -S): a library
# missing on the build machine, or a new system dependency, fails the build here instead
# of on a user's machine.
#
# Environment: DEB_MAINTAINER ("Name <email>"), DEB_REVISION (default 1).
set -euo pipefail
cd "$(dirname "$0")/../.."

BUNDLE=${1:-dist/bucket-chat}
OUT=${2:-dist}
PACKAGE=bucket-chat-desktop
MAINTAINER=${DEB_MAINTAINER:-Bucket Chat Desktop developers <bucket-chat@users.noreply.github.com>}
REVISION=${DEB_REVISION:-1}
ICON_SIZES=(16 24 32 48 64 128 256 512)

# What the bundle takes from the system. Libraries PyInstaller does not bundle on purpose
# (glibc, the C++ runtime, OpenGL/EGL, xcb, wayland), and the data the bundled libraries
# read: fontconfig's configuration and fonts (via libfontconfig1), XKB keymaps (via
# libxkbcommon0), the D-Bus client library's configuration (libdbus-1-3).
DEPENDS=(
  "libc6 (>= @GLIBC@)"
  libgcc-s1
  libstdc++6
  libgl1
  libegl1
  libxcb1
  libwayland-client0
  libwayland-cursor0
  libwayland-egl1
  libxkbcommon0
  libfontconfig1
  libdbus-1-3
)
RECOMMENDS=("fonts-dejavu-core | fonts-liberation2 | fonts-noto-core" "xdg-utils")
SUGGESTS=("gnome-keyring | kwalletmanager | keepassxc")

die() {
  echo "build-deb: $*" >&2
  exit 1
}

if [ ! -x "$BUNDLE/bucket-chat" ] || [ ! -x "$BUNDLE/bucket-chat-desktop" ]; then
  die "$BUNDLE has no bucket-chat / bucket-chat-desktop: run PyInstaller first (installer/build-linux.sh)"
fi
for tool in dpkg-deb dpkg-query readelf; do
  command -v "$tool" >/dev/null || die "$tool not found (Debian: dpkg, binutils)"
done

# The version is what the frozen app itself reports (from its copied package metadata).
app_version=$("$BUNDLE/bucket-chat" --version | awk '{ print $2 }')
[ -n "$app_version" ] || die "'$BUNDLE/bucket-chat --version' printed no version"
# PEP 440 pre-/dev-releases sort before the release in Debian only with a tilde.
deb_version=$(printf %s "$app_version" | sed -E 's/[.]?(a|b|rc|dev)([0-9]*)/~\1\2/')-$REVISION
arch=$(dpkg --print-architecture)

# -- shared libraries: which the bundle needs from the system, and the glibc it needs -------
mapfile -t elves < <(find "$BUNDLE" -type f \( -name '*.so' -o -name '*.so.*' \))
elves+=("$BUNDLE/bucket-chat" "$BUNDLE/bucket-chat-desktop")
declare -A bundled=()
while IFS= read -r f; do bundled[${f##*/}]=1; done < <(find "$BUNDLE" \( -type f -o -type l \) -name '*.so*')
declare -A external=()
glibc=2.17
for f in "${elves[@]}"; do
  while IFS= read -r lib; do
    [ -n "${bundled[$lib]:-}" ] || external[$lib]=1
  done < <(readelf -d "$f" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  while IFS= read -r v; do
    glibc=$(printf '%s\n%s\n' "$glibc" "$v" | sort -V | tail -1)
  done < <(readelf -V "$f" 2>/dev/null | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -Vu | tail -1)
done
depends_names=" $(printf '%s\n' "${DEPENDS[@]}" | awk '{ print $1 }' | tr '\n' ' ') "
missing=()
for lib in "${!external[@]}"; do
  owner=$(dpkg-query -S "*/$lib" 2>/dev/null | head -1 | cut -d: -f1 || true)
  if [ -z "$owner" ]; then
    missing+=("$lib (no installed package has it: install its package and rebuild the bundle)")
  elif [[ $depends_names != *" $owner "* ]]; then
    missing+=("$lib (from $owner, which is not in Depends)")
  fi
done
if ((${#missing[@]})); then
  printf 'build-deb: the bundle needs libraries that Depends does not cover:\n' >&2
  printf '  %s\n' "${missing[@]}" >&2
  exit 1
fi

# -- the package tree -------------------------------------------------------------------
stage=build/deb/$PACKAGE
rm -rf "$stage"
mkdir -p "$stage/DEBIAN" "$stage/opt" "$stage/usr/bin" "$stage/usr/share/applications" \
  "$stage/usr/share/metainfo" "$stage/usr/share/doc/$PACKAGE"
cp -a "$BUNDLE" "$stage/opt/bucket-chat"
for name in bucket-chat bucket-chat-desktop; do
  sed "s/@NAME@/$name/g" installer/linux/launcher.sh >"$stage/usr/bin/$name"
done
cp resources/bucket-chat-desktop.desktop "$stage/usr/share/applications/"
cp resources/io.github.bucketchat.BucketChat.metainfo.xml "$stage/usr/share/metainfo/"
for size in "${ICON_SIZES[@]}"; do
  mkdir -p "$stage/usr/share/icons/hicolor/${size}x${size}/apps"
  cp "resources/icons/bucket-chat-$size.png" \
    "$stage/usr/share/icons/hicolor/${size}x${size}/apps/bucket-chat-desktop.png"
done
{
  echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
  echo "Upstream-Name: Bucket Chat Desktop"
  echo
  echo "Files: *"
  echo "Copyright: Bucket Chat Desktop developers"
  echo "License: AGPL-3.0-or-later"
  echo "Comment: /opt/bucket-chat also holds a Python runtime and third-party libraries"
  echo " (Qt/PySide6 under LGPL-3.0, PyNaCl/libsodium, botocore, Google and Azure SDKs, ...),"
  echo " each under its own licence; their metadata is in /opt/bucket-chat/_internal/*.dist-info."
  echo
  echo "License: AGPL-3.0-or-later"
  sed -e 's/^[[:space:]]*$/./' -e 's/^/ /' LICENSE
} >"$stage/usr/share/doc/$PACKAGE/copyright"
{
  echo "$PACKAGE ($deb_version) unstable; urgency=medium"
  echo
  echo "  * Bucket Chat Desktop $app_version, frozen with PyInstaller (installer/build-linux.sh)."
  echo
  echo " -- $MAINTAINER  $(date -R -u ${SOURCE_DATE_EPOCH:+-d "@$SOURCE_DATE_EPOCH"})"
} | gzip -9n >"$stage/usr/share/doc/$PACKAGE/changelog.Debian.gz"

# Ownership comes from --root-owner-group; modes are normalised here.
find "$stage" -type d -exec chmod 0755 {} +
find "$stage" -type f -exec chmod 0644 {} +
chmod 0755 "$stage/usr/bin/"* "$stage/opt/bucket-chat/bucket-chat" \
  "$stage/opt/bucket-chat/bucket-chat-desktop"

installed_kb=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
join() {
  local IFS=,
  local out="$*"
  echo "${out//,/, }"
}
depends=$(join "${DEPENDS[@]}")
depends=${depends//@GLIBC@/$glibc}
cat >"$stage/DEBIAN/control" <<EOF
Package: $PACKAGE
Version: $deb_version
Architecture: $arch
Maintainer: $MAINTAINER
Installed-Size: $installed_kb
Depends: $depends
Recommends: $(join "${RECOMMENDS[@]}")
Suggests: $(join "${SUGGESTS[@]}")
Section: net
Priority: optional
Homepage: https://github.com/bucketchat/bucket-chat-desktop
Description: serverless, tamper-evident chat over shared folders and buckets
 Bucket Chat needs no chat server: a room is a folder, or a prefix in an S3,
 Google Cloud Storage or Azure bucket, that its members can already reach.
 Every message is Ed25519-signed and hash-chained to the sender's previous one,
 and every client verifies everything it reads, so forged, edited, dropped or
 reordered history is reported.
 .
 This package holds the desktop app (bucket-chat-desktop) and the scriptable
 command-line client (bucket-chat), frozen with their own Python runtime and Qt.
EOF
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z \
  | xargs -0 md5sum >DEBIAN/md5sums)
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/md5sums"

mkdir -p "$OUT"
deb="$OUT/${PACKAGE}_${deb_version}_${arch}.deb"
rm -f "$OUT/${PACKAGE}_"*"_${arch}.deb"
dpkg-deb --root-owner-group -Zxz -z6 --threads-max="$(nproc)" --build "$stage" "$deb" >/dev/null
rm -rf "$stage"
echo "$deb"
