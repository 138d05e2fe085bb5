#!/usr/bin/env bash
# Makes a CA and a "localhost" certificate with the openssl command, as tls_pair.cpp
# shows, and runs tls_pair with them. Usage: tls_pair.sh TLS_PAIR
set -eu
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
printf 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' > ext.cnf
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj /CN=demo-ca -keyout ca.key -out ca.pem 2> /dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
    -keyout node.key -out node.csr 2> /dev/null
openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
    -extfile ext.cnf -out node.pem 2> /dev/null
"$1" ca.pem node.pem node.key
