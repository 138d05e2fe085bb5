#!/usr/bin/env bash
# echo_server and echo_client as two processes: the client's words come back.
# Usage: echo_pair.sh ECHO_SERVER ECHO_CLIENT
set -u
work=$(mktemp -d)
"$1" > "$work/server.out" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
endpoint=
for _ in $(seq 100); do  # up to 10 s for the "listening on" line
  endpoint=$(sed -n 's/^listening on //p' "$work/server.out")
  [ -n "$endpoint" ] && break
  sleep 0.1
done
[ -n "$endpoint" ] || { echo "no endpoint from echo_server"; cat "$work/server.out"; exit 1; }
"$2" "$endpoint" hello mesh
