#!/bin/sh
# Run a command against a real, private, unlocked Secret Service (GNOME Keyring).
#
#   tests/with-keyring.sh <command...>
#   tests/with-keyring.sh .venv/bin/pytest tests/unit/keys -q
#
# The command runs on a private D-Bus session bus (dbus-run-session) with a fresh
# gnome-keyring-daemon whose login keyring lives in a temporary XDG_DATA_HOME and is
# unlocked with a throw-away password; the user's own keyring is never touched.
# BUCKET_CHAT_TEST_SECRET_SERVICE=1 tells the keyring tests that they may run.
# The temporary folder is removed and the daemon is stopped afterwards; the exit status
# is the command's. Needs (Debian): gnome-keyring dbus-x11 (dbus-run-session, dbus-send).
set -u

if [ "$#" -eq 0 ]; then
    echo "usage: $0 <command...>" >&2
    exit 2
fi
for tool in dbus-run-session dbus-send gnome-keyring-daemon mktemp; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "$0: $tool not found (Debian: apt-get install gnome-keyring dbus-x11)" >&2
        exit 127
    fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bucket-chat-keyring.XXXXXXXX") || exit 1

# The daemon normally exits with the bus; stop it by PID if it did not.
stop_daemon() {
    [ -s "$tmp/daemon.pid" ] || return 0
    pid=$(cat "$tmp/daemon.pid")
    case "$pid" in '' | *[!0-9]*) return 0 ;; esac
    tries=0
    while [ "$tries" -lt 20 ]; do
        state=$(ps -o stat= -p "$pid" 2>/dev/null) || return 0 # gone
        case "$state" in Z*) return 0 ;; esac                 # exited, not yet reaped
        case "$(ps -o comm= -p "$pid" 2>/dev/null)" in
            gnome-keyring*) ;;
            *) return 0 ;; # the PID now belongs to something else
        esac
        tries=$((tries + 1))
        sleep 0.1
    done
    echo "$0: stopping gnome-keyring-daemon (pid $pid), which outlived its bus" >&2
    kill "$pid" 2>/dev/null
}
cleanup() {
    stop_daemon
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -m 700 "$tmp/data" "$tmp/runtime" "$tmp/config" || exit 1
# Private data (the keyring files), runtime (the daemon's control socket) and config
# (so that no keyringrc.cfg of the user picks another backend).
export XDG_DATA_HOME="$tmp/data" XDG_RUNTIME_DIR="$tmp/runtime" XDG_CONFIG_HOME="$tmp/config"
export BUCKET_CHAT_TEST_SECRET_SERVICE=1
# The login keyring's password, for tests that lock and unlock it.
export BUCKET_CHAT_TEST_KEYRING_PASSWORD=bucket-chat-test
export BUCKET_CHAT_KEYRING_PIDFILE="$tmp/daemon.pid" BUCKET_CHAT_KEYRING_LOG="$tmp/bus.log"
unset PYTHON_KEYRING_BACKEND GNOME_KEYRING_CONTROL

# The bus and the keyring daemon chatter on stderr (activations, "cannot open display"
# from the prompter, "Failed to set fd limit" as root): that goes to a log, shown only if
# the set-up fails. The command itself keeps the original stderr (fd 3).
dbus-run-session -- sh -c '
    fail() { echo "with-keyring.sh: $1; log:" >&3; cat "$BUCKET_CHAT_KEYRING_LOG" >&3; exit 70; }
    # --unlock reads the password on stdin and creates/unlocks the login keyring;
    # --start then makes that daemon own org.freedesktop.secrets on this bus.
    set -a
    eval "$(printf %s "$BUCKET_CHAT_TEST_KEYRING_PASSWORD" | gnome-keyring-daemon --unlock --components=secrets)" \
        || fail "gnome-keyring-daemon --unlock failed"
    eval "$(gnome-keyring-daemon --start --components=secrets)" \
        || fail "gnome-keyring-daemon --start failed"
    set +a
    pid=$(dbus-send --session --print-reply=literal --dest=org.freedesktop.DBus \
        /org/freedesktop/DBus org.freedesktop.DBus.GetConnectionUnixProcessID \
        string:org.freedesktop.secrets | awk "{ print \$2 }")
    [ -n "$pid" ] || fail "no Secret Service on the private bus"
    printf %s "$pid" >"$BUCKET_CHAT_KEYRING_PIDFILE"
    unset BUCKET_CHAT_KEYRING_PIDFILE BUCKET_CHAT_KEYRING_LOG
    "$@" 2>&3 3>&-
' with-keyring "$@" 3>&2 2>"$tmp/bus.log"
status=$?
exit "$status"
