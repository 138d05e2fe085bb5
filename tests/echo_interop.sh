#!/usr/bin/env bash
# mesh_echo listen and mesh_echo send against each other, as outside programs drive them.
# Usage: echo_interop.sh PATH_TO_MESH_ECHO
set -u

echo_bin=${1:?usage: echo_interop.sh PATH_TO_MESH_ECHO}
work=$(mktemp -d)
listener_pid=
pids=()

cleanup() {
    for pid in "${pids[@]}" $listener_pid; do
        kill -KILL "$pid" 2>/dev/null
    done
    rm -rf "$work"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    for f in "$work"/*.out "$work"/*.err; do
        [ -s "$f" ] && { echo "--- $f" >&2; cat "$f" >&2; }
    done
    exit 1
}

"$echo_bin" listen tcp://127.0.0.1:0 >"$work/listen.out" 2>"$work/listen.err" &
listener_pid=$!

# The first line names the bound endpoint; it is flushed at once.
endpoint=
for _ in $(seq 100); do
    if read -r first <"$work/listen.out" 2>/dev/null && [ -n "$first" ]; then
        case $first in
            "listening tcp://127.0.0.1:"[0-9]*) endpoint=${first#listening } ;;
            *) fail "unexpected first line: '$first'" ;;
        esac
        break
    fi
    kill -0 "$listener_pid" 2>/dev/null || fail "the listener exited early"
    sleep 0.1
done
[ -n "$endpoint" ] || fail "no 'listening' line within 10 s"
port=${endpoint##*:}
[ "$port" != 0 ] || fail "the listener printed port 0"
echo "listener at $endpoint"

# run NAME COUNT ARGS...: a sender that must print exactly "OK COUNT" and exit 0.
run() {
    local name=$1 count=$2
    shift 2
    timeout 30 "$echo_bin" send "$endpoint" --count "$count" "$@" >"$work/$name.out" 2>"$work/$name.err"
    local status=$?
    [ $status -eq 0 ] || fail "$name: exit status $status"
    [ "$(cat "$work/$name.out")" = "OK $count" ] || fail "$name: printed '$(cat "$work/$name.out")'"
    echo "$name: OK $count"
}

run small 20000 --size 64
run large 500 --size 100000 --window 8
run unlimited 1000 --size 8 --window 0

# Two senders at once.
run parallel_a 5000 --size 200 &
pids+=($!)
run parallel_b 3000 --size 1000 --window 16 &
pids+=($!)
for pid in "${pids[@]}"; do
    wait "$pid" || fail "a parallel sender failed"
done
pids=()

# SIGTERM: the listener exits 0 within 5 s.
kill -TERM "$listener_pid"
for _ in $(seq 50); do
    kill -0 "$listener_pid" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$listener_pid" 2>/dev/null; then
    fail "the listener did not exit within 5 s of SIGTERM"
fi
wait "$listener_pid"
status=$?
listener_pid=
[ $status -eq 0 ] || fail "the listener exited with status $status after SIGTERM"
echo "listener exited 0 on SIGTERM"
