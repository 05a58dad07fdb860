#!/usr/bin/env bash
# AppImage recipe: the PyInstaller folder in an AppDir, packed by appimagetool.
#
#   bash installer/linux/build-appimage.sh [--appdir-only]
#       -> build/BucketChat.AppDir, then dist/BucketChat-<version>-<arch>.AppImage
#
# appimagetool (https://github.com/AppImage/appimagetool, a single AppImage file) is not
# in Debian nor on PyPI: the Python helpers there download it at build time. Download it
# yourself, put it on PATH or point APPIMAGETOOL at it. Without it, --appdir-only still
# lays out the AppDir (and AppDir/AppRun runs the app), which is what CI can check.
#
# Like the .deb, the image takes glibc, libstdc++, OpenGL/EGL, xcb and wayland from the
# host (PyInstaller leaves them out), so it runs on distributions at least as new as the
# build machine's glibc (Debian 12, Ubuntu 23.04 and later when built on bookworm).
set -euo pipefail
cd "$(dirname "$0")/../.."

BUNDLE=dist/bucket-chat
APPDIR=build/BucketChat.AppDir
[ -x "$BUNDLE/bucket-chat-desktop" ] || { echo "build-appimage: run installer/build-linux.sh first" >&2; exit 1; }
version=$("$BUNDLE/bucket-chat" --version | awk '{ print $2 }')

rm -rf "$APPDIR"
mkdir -p "$APPDIR/usr/lib" "$APPDIR/usr/share/applications" "$APPDIR/usr/share/metainfo"
cp -a "$BUNDLE" "$APPDIR/usr/lib/bucket-chat"
install -m 0755 installer/linux/appimage/AppRun "$APPDIR/AppRun"
cp resources/bucket-chat-desktop.desktop "$APPDIR/"
cp resources/bucket-chat-desktop.desktop "$APPDIR/usr/share/applications/"
# appimagetool matches the metainfo to the desktop file by name.
cp resources/io.github.bucketchat.BucketChat.metainfo.xml \
  "$APPDIR/usr/share/metainfo/bucket-chat-desktop.appdata.xml"
cp resources/icons/bucket-chat-256.png "$APPDIR/bucket-chat-desktop.png"
ln -s bucket-chat-desktop.png "$APPDIR/.DirIcon"
for size in 16 24 32 48 64 128 256 512; do
  mkdir -p "$APPDIR/usr/share/icons/hicolor/${size}x${size}/apps"
  cp "resources/icons/bucket-chat-$size.png" \
    "$APPDIR/usr/share/icons/hicolor/${size}x${size}/apps/bucket-chat-desktop.png"
done
echo "$APPDIR"
[ "${1:-}" = "--appdir-only" ] && exit 0

tool=${APPIMAGETOOL:-$(command -v appimagetool || true)}
if [ -z "$tool" ]; then
  echo "build-appimage: appimagetool not found (set APPIMAGETOOL); the AppDir is ready in $APPDIR" >&2
  exit 3
fi
arch=$(uname -m)
out="dist/BucketChat-$version-$arch.AppImage"
ARCH=$arch "$tool" --no-appstream "$APPDIR" "$out"
echo "$out"
