#!/usr/bin/env bash
# Wrap "dist/Bucket Chat.app" (built by PyInstaller from build.spec on macOS) into a
# compressed disk image with the usual drag-to-Applications layout:
#
#   bash installer/macos/build-dmg.sh        -> dist/BucketChat-<version>-macos-<arch>.dmg
#
# Signing: ad hoc by default (enough to run on Apple silicon; Gatekeeper still asks the
# user to confirm an app from the internet: right-click > Open). With MACOS_SIGN_IDENTITY
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
codesign --verify --deep --strict "$APP"

work=$(mktemp -d)
cleanup() {
  if [ -d "$work/mnt/Bucket Chat.app" ]; then hdiutil detach "$work/mnt" -quiet || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
mkdir "$work/stage" "$work/mnt"
cp -R "$APP" "$work/stage/"
ln -s /Applications "$work/stage/Applications"
rm -f "$dmg"
hdiutil create -volname "Bucket Chat" -srcfolder "$work/stage" -fs HFS+ -format UDZO \
  -imagekey zlib-level=9 -ov "$dmg" >/dev/null
hdiutil verify "$dmg" >/dev/null

# The image must mount, and the app inside it must run.
hdiutil attach "$dmg" -nobrowse -readonly -mountpoint "$work/mnt" >/dev/null
"$work/mnt/Bucket Chat.app/Contents/MacOS/bucket-chat" --version
QT_QPA_PLATFORM=offscreen "$work/mnt/Bucket Chat.app/Contents/MacOS/bucket-chat-desktop" --smoke
hdiutil detach "$work/mnt" -quiet
echo "$dmg"
