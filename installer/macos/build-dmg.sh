#!/usr/bin/env bash
# Wrap "dist/Bucket Chat.app" (built by PyInstaller from build.spec on macOS) into a
# compressed disk image with the usual drag-to-Applications layout:
#
#   bash installer/macos/build-dmg.sh        -> dist/BucketChat-<version>-macos-<arch>.dmg
#
# <arch> is the build machine's (arm64 or x86_64): the release workflow runs this on both.
# hdiutil create/attach/detach are retried: "Resource busy" (Spotlight or another mount
# still holding the image) is common on CI machines.
#
# Signing: ad hoc by default (enough to run on Apple silicon; Gatekeeper still asks the
# user to confirm an app from the internet: docs/PACKAGING.md). With MACOS_SIGN_IDENTITY
# set to a "Developer ID Application" identity in the keychain it is signed with the
# hardened runtime and installer/macos/entitlements.plist, ready for notarisation
# (xcrun notarytool submit ... --wait; xcrun stapler staple), which needs Apple
# credentials and is not done here.
set -euo pipefail
cd "$(dirname "$0")/../.."

APP="dist/Bucket Chat.app"
[ -d "$APP" ] || { echo "build-dmg: $APP not found: run PyInstaller on build.spec first" >&2; exit 1; }
version=$(/usr/libexec/PlistBuddy -c 'Print :CFBundleShortVersionString' "$APP/Contents/Info.plist")
arch=$(uname -m)
dmg="dist/BucketChat-$version-macos-$arch.dmg"

if [ -n "${MACOS_SIGN_IDENTITY:-}" ]; then
  codesign --force --deep --options runtime --timestamp \
    --entitlements installer/macos/entitlements.plist --sign "$MACOS_SIGN_IDENTITY" "$APP"
else
  codesign --force --deep --sign - "$APP"
fi
codesign --verify --deep --strict --verbose=2 "$APP"

# retry CMD...: run it up to 5 times, 3 s apart (hdiutil fails transiently on busy images).
retry() {
  local n
  for n in 1 2 3 4 5; do
    if "$@"; then return 0; fi
    echo "build-dmg: '$1 ${2:-}' failed (attempt $n of 5)" >&2
    sleep 3
  done
  return 1
}

work=$(mktemp -d)
cleanup() {
  if [ -d "$work/mnt/Bucket Chat.app" ]; then
    retry hdiutil detach "$work/mnt" -quiet || hdiutil detach "$work/mnt" -force -quiet || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
mkdir "$work/stage" "$work/mnt"
cp -R "$APP" "$work/stage/"
ln -s /Applications "$work/stage/Applications"
rm -f "$dmg"
retry hdiutil create -volname "Bucket Chat" -srcfolder "$work/stage" -fs HFS+ -format UDZO \
  -imagekey zlib-level=9 -ov "$dmg" >/dev/null
retry hdiutil verify "$dmg" >/dev/null

# The image must mount, and the app inside it must run.
retry hdiutil attach "$dmg" -nobrowse -readonly -mountpoint "$work/mnt" >/dev/null
codesign --verify --deep --strict "$work/mnt/Bucket Chat.app"
"$work/mnt/Bucket Chat.app/Contents/MacOS/bucket-chat" --version
QT_QPA_PLATFORM=offscreen "$work/mnt/Bucket Chat.app/Contents/MacOS/bucket-chat-desktop" --smoke
retry hdiutil detach "$work/mnt" -quiet
echo "$dmg"
