#!/usr/bin/env bash
# mesh_echo listen and mesh_echo send against each other, as outside programs drive them,
# over tcp://, unix:// and (with "tls") tcps:// with mutual verification and insecure.
# Usage: echo_interop.sh PATH_TO_MESH_ECHO [tls]
set -u

echo_bin=${1:?usage: echo_interop.sh PATH_TO_MESH_ECHO [tls]}
with_tls=${2:-}
work=$(mktemp -d)
listener_pid=
listeners=0
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

# start_listener BIND PATTERN [TLS options...]: starts "mesh_echo listen" and sets
# $endpoint from its first line, which must match PATTERN.
start_listener() {
    local bind=$1 pattern=$2
    shift 2
    # A fresh output file per listener: a previous listener's line must never be read.
    listeners=$((listeners + 1))
    local out="$work/listen$listeners.out"
    "$echo_bin" listen "$bind" "$@" >"$out" 2>"$work/listen$listeners.err" &
    listener_pid=$!
    endpoint=
    for _ in $(seq 100); do
        if read -r first <"$out" 2>/dev/null && [ -n "$first" ]; then
            # shellcheck disable=SC2254
            case $first in
                listening\ $pattern) endpoint=${first#listening } ;;
                *) fail "unexpected first line: '$first'" ;;
            esac
            break
        fi
        kill -0 "$listener_pid" 2>/dev/null || fail "the listener exited early"
        sleep 0.1
    done
    [ -n "$endpoint" ] || fail "no 'listening' line within 10 s"
    echo "listener at $endpoint"
}

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

# SIGTERM: the listener exits 0 within 5 s.
stop_listener() {
    kill -TERM "$listener_pid"
    for _ in $(seq 50); do
        kill -0 "$listener_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$listener_pid" 2>/dev/null; then
        fail "the listener did not exit within 5 s of SIGTERM"
    fi
    wait "$listener_pid"
    local status=$?
    listener_pid=
    [ $status -eq 0 ] || fail "the listener exited with status $status after SIGTERM"
    echo "listener exited 0 on SIGTERM"
}

# --- tcp://, the full set
start_listener tcp://127.0.0.1:0 'tcp://127.0.0.1:[1-9]*'
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
stop_listener

# --- unix://; the listener removes its socket file when it exits
start_listener "unix://$work/echo.sock" "unix://$work/echo.sock"
run unix_small 5000 --size 64
run unix_large 200 --size 100000 --window 8
stop_listener
[ ! -e "$work/echo.sock" ] || fail "the unix listener left its socket file behind"

[ "$with_tls" = tls ] || { echo "PASS (without tcps://)"; exit 0; }

# --- tcps://: a CA and one certificate for localhost/127.0.0.1, made here with openssl
command -v openssl >/dev/null || fail "openssl is needed to make the test certificates"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
openssl req -x509 "${ec[@]}" -keyout "$work/ca.key" -out "$work/ca.pem" -days 2 -subj /CN=echo-test-ca \
    >/dev/null 2>&1 || fail "openssl: CA"
openssl req "${ec[@]}" -keyout "$work/node.key" -out "$work/node.csr" -subj /CN=localhost \
    >/dev/null 2>&1 || fail "openssl: request"
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >"$work/node.ext"
openssl x509 -req -in "$work/node.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
    -out "$work/node.pem" -days 2 -extfile "$work/node.ext" >/dev/null 2>&1 || fail "openssl: sign"
tls=(--ca "$work/ca.pem" --cert "$work/node.pem" --key "$work/node.key")
# A second CA and a certificate from it, which the listener must not accept.
openssl req -x509 "${ec[@]}" -keyout "$work/other.key" -out "$work/other.pem" -days 2 -subj /CN=localhost \
    >/dev/null 2>&1 || fail "openssl: other CA"

start_listener tcps://127.0.0.1:0 'tcps://127.0.0.1:[1-9]*' "${tls[@]}"
run tls_small 5000 --size 64 "${tls[@]}"
run tls_large 200 --size 100000 --window 8 "${tls[@]}"
# A sender whose certificate no trusted CA signed is refused by the mutual-TLS listener.
if timeout 30 "$echo_bin" send "$endpoint" --count 1 --size 8 --ca "$work/ca.pem" --cert "$work/other.pem" \
        --key "$work/other.key" >"$work/untrusted.out" 2>"$work/untrusted.err"; then
    fail "a sender with an untrusted certificate got through"
fi
grep -q "not trusted" "$work/untrusted.err" || fail "untrusted sender: $(cat "$work/untrusted.err")"
echo "sender with an untrusted certificate refused: $(cat "$work/untrusted.err")"
stop_listener

# Insecure on both ends: encrypted, unverified, and said so on stderr.
start_listener tcps://127.0.0.1:0 'tcps://127.0.0.1:[1-9]*' --insecure --cert "$work/node.pem" --key "$work/node.key"
run tls_insecure 2000 --size 64 --insecure
grep -q "verification is disabled" "$work/tls_insecure.err" || fail "insecure mode gave no warning"
stop_listener
echo PASS
