#!/bin/sh
# /usr/bin/@NAME@ - starts @NAME@ from the Bucket Chat folder, /opt/bucket-chat.
#
# The folder is found next to this script's own location (../../opt/bucket-chat), so the
# same launcher works installed (/usr/bin -> /opt) and in a package unpacked anywhere
# with `dpkg -x pkg.deb ROOT` (ROOT/usr/bin -> ROOT/opt). BUCKET_CHAT_APPDIR overrides
# the folder.
self=$(readlink -f -- "$0") || self=$0
appdir=${BUCKET_CHAT_APPDIR:-${self%/*}/../../opt/bucket-chat}
exec "$appdir/@NAME@" "$@"
