#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets: tests/fuzz/corpus/<target>/<name>.

Each file follows its target's input layout (see the comment at the top of
fuzz_<target>.cpp). The frames are encoded here, from the wire format's
definition, not by the library. Run it after changing a layout; --check tells
whether the committed corpus is what this script writes (CTest runs that).
"""

import argparse
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

HELLO = bytes([0, 1, 0, 1])


def header(length, version=1, checksum=None):
    """A v1 frame header: u16 version, u32 length, and the byte that makes all seven sum to 0."""
    six = struct.pack(">HI", version, length)
    if checksum is None:
        checksum = (0x100 - (sum(six) & 0xFF)) & 0xFF
    return six + bytes([checksum])


def frame(payload, **kwargs):
    return header(len(payload), **kwargs) + payload


def bad_checksum(payload):
    good = header(len(payload))
    return header(len(payload), checksum=good[6] ^ 0x01) + payload


# ---- frame_decoder: [limits] [flags] [plan...] [stream] ----

# Indexes into the harness's table of maxima.
MAX_0, MAX_7, MAX_8, MAX_4096, MAX_64K, MAX_16M, MAX_U32 = 0, 3, 4, 6, 8, 12, 13
REST = 127
ZERO_COPY = 0x80


def decoder_input(stream, plan=(REST,), first=MAX_16M, second=MAX_16M, resume=False, probe_ready=False):
    assert 1 <= len(plan) <= 16
    flags = (len(plan) - 1) | (0x10 if resume else 0) | (0x20 if probe_ready else 0)
    return bytes([first | (second << 4), flags]) + bytes(plan) + stream


def frame_decoder():
    three = frame(b"hello") + frame(b"") + frame(bytes(range(40)))
    big = bytes((i * 7) & 0xFF for i in range(1500))
    return {
        "valid_frames": decoder_input(three),
        "split_every_byte": decoder_input(three, plan=(1,)),
        "split_mixed": decoder_input(three + frame(b"tail"), plan=(3, 0, 11, 2, 5), probe_ready=True),
        "zero_length_frames": decoder_input(frame(b"") * 12, plan=(5, 9)),
        "zero_copy_body": decoder_input(frame(big), plan=(7, ZERO_COPY | 100, ZERO_COPY | 0, ZERO_COPY | 101)),
        "zero_copy_and_consume": decoder_input(frame(big) + frame(b"after"), plan=(ZERO_COPY | 60, 40)),
        "large_announced_short_body": decoder_input(header(15 << 20) + b"x" * 300, plan=(7, ZERO_COPY | 127)),
        "bad_checksum": decoder_input(frame(b"ok") + bad_checksum(b"bad") + frame(b"lost")),
        "bad_checksum_resume": decoder_input(bad_checksum(b"") + frame(b"found again"), plan=(4,), resume=True),
        "bad_version": decoder_input(frame(b"v2", version=2) + frame(b"x"), resume=True),
        "oversize_length": decoder_input(header(0xFFFFFFFF) + b"zz"),
        "over_small_limit": decoder_input(frame(b"12345678") + frame(b"1234567"), first=MAX_U32, second=MAX_7, resume=True),
        "exact_small_limit": decoder_input(frame(b"12345678"), first=MAX_8, second=MAX_64K),
        "zero_limit": decoder_input(frame(b"") + frame(b"a") + frame(b""), first=MAX_0, resume=True),
        "truncated_header": decoder_input(frame(b"one") + header(10)[:4], plan=(2,)),
        "truncated_body": decoder_input(frame(b"one") + header(4096) + b"part", first=MAX_4096),
        "garbage": decoder_input(bytes((i * 37 + 11) & 0xFF for i in range(64)), plan=(1, 6), resume=True),
    }


# ---- handshake: [mode] [peer bytes] ----

LISTENER, CONNECTOR, FULL_CLOSE, STEPPED, ASYNC = 0, 1, 2, 4, 8


def chunks(n):
    return (n - 1) << 4


def handshake():
    return {
        "listener_valid_hello": bytes([LISTENER | ASYNC]) + HELLO,
        "listener_valid_hello_stepped": bytes([LISTENER | STEPPED | chunks(1)]) + HELLO,
        "listener_range_hello": bytes([LISTENER | ASYNC]) + bytes([0, 0, 0, 9]),
        "listener_bad_hello": bytes([LISTENER | ASYNC]) + bytes([0, 2, 0, 3]),
        "listener_inverted_range": bytes([LISTENER | STEPPED | chunks(3)]) + bytes([0, 2, 0, 1]),
        "listener_short_hello": bytes([LISTENER | ASYNC]) + bytes([0, 1, 0]),
        "listener_hello_then_frame": bytes([LISTENER | STEPPED | chunks(2)]) + HELLO + frame(b"first"),
        "listener_peer_gone": bytes([LISTENER | FULL_CLOSE]) + HELLO,
        "connector_valid_reply": bytes([CONNECTOR]) + bytes([0, 1]),
        "connector_refused": bytes([CONNECTOR]) + bytes([0, 0]),
        "connector_wrong_version": bytes([CONNECTOR | STEPPED | chunks(1)]) + bytes([0, 2]),
        "connector_short_reply": bytes([CONNECTOR | STEPPED | chunks(1)]) + bytes([0]),
        "connector_reply_then_frame": bytes([CONNECTOR]) + bytes([0, 1]) + frame(b"x"),
        "connector_peer_gone": bytes([CONNECTOR | FULL_CLOSE]) + bytes([0, 1]),
        "empty": bytes([LISTENER | STEPPED]),
    }


# ---- mesh_loopback: [mode] [bytes]; bit 0 leaves the hello out ----

NO_HELLO, HALF_CLOSE, RESET = 1, 2, 4


def mesh_loopback():
    return {
        "frames": bytes([0]) + frame(b"hello") + frame(b"") + frame(b"world"),
        "frames_half_close": bytes([HALF_CLOSE]) + frame(b"ping") * 3,
        "zero_length_frames": bytes([0]) + frame(b"") * 40,
        "split_hello_in_bytes": bytes([NO_HELLO]) + HELLO + frame(b"by hand"),
        "bad_hello": bytes([NO_HELLO | HALF_CLOSE]) + bytes([0, 2, 0, 3]) + frame(b"never"),
        "short_hello": bytes([NO_HELLO]) + bytes([0, 1]),
        "no_bytes": bytes([NO_HELLO | HALF_CLOSE]),
        "bad_checksum": bytes([HALF_CLOSE]) + frame(b"ok") + bad_checksum(b"bad"),
        "bad_version": bytes([0]) + frame(b"v9", version=9),
        "oversize_length": bytes([HALF_CLOSE]) + header(0xFFFFFFFF) + b"xx",
        "truncated_frame": bytes([HALF_CLOSE]) + frame(b"whole") + header(1000) + b"part",
        "large_frame_reset": bytes([RESET]) + header(200000) + bytes(range(256)) * 4,
    }


# ---- tls_listener: [mode] [bytes]; bit 0 sends the bytes inside TLS ----

INSIDE, WITH_HELLO, TLS_HALF_CLOSE, TLS_RESET = 1, 2, 4, 8


def client_hello(extensions=b"", truncate=None):
    """A TLS 1.2-style ClientHello record; the server rejects or waits for more."""
    body = bytes([3, 3]) + bytes(range(32)) + b"\x00"  # version, random, no session id
    body += struct.pack(">H", 4) + bytes([0xC0, 0x2B, 0x13, 0x01])  # cipher suites
    body += bytes([1, 0])  # compression: null
    body += struct.pack(">H", len(extensions)) + extensions
    handshake_msg = bytes([1]) + struct.pack(">I", len(body))[1:] + body
    record = bytes([0x16, 3, 1]) + struct.pack(">H", len(handshake_msg)) + handshake_msg
    return record if truncate is None else record[:truncate]


def tls_listener():
    supported_groups = struct.pack(">HHH", 10, 4, 2) + struct.pack(">H", 23)
    return {
        "client_hello": bytes([0]) + client_hello(),
        "client_hello_groups": bytes([TLS_HALF_CLOSE]) + client_hello(supported_groups),
        "client_hello_prefix": bytes([0]) + client_hello(truncate=20),
        "record_header_only": bytes([TLS_HALF_CLOSE]) + bytes([0x16, 3, 1, 0x40, 0]),
        "huge_record_length": bytes([0]) + bytes([0x16, 3, 3, 0xFF, 0xFF]) + b"\x01" * 16,
        "sslv2_hello": bytes([TLS_RESET]) + bytes([0x80, 0x2E, 0x01, 0x00, 0x02]) + b"\x00" * 16,
        "plain_hello": bytes([TLS_HALF_CLOSE]) + HELLO + frame(b"not tls"),
        "http": bytes([0]) + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "no_bytes": bytes([TLS_HALF_CLOSE]),
        "inside_frames": bytes([INSIDE | WITH_HELLO]) + frame(b"inside") + frame(b""),
        "inside_frames_half_close": bytes([INSIDE | WITH_HELLO | TLS_HALF_CLOSE]) + frame(b"a") + header(99) + b"b",
        "inside_bad_hello": bytes([INSIDE]) + bytes([0, 5, 0, 6]),
        "inside_bad_checksum": bytes([INSIDE | WITH_HELLO]) + bad_checksum(b"bad"),
        "inside_oversize": bytes([INSIDE | WITH_HELLO | TLS_RESET]) + header(0x7FFFFFFF),
    }


TARGETS = {
    "frame_decoder": frame_decoder,
    "handshake": handshake,
    "mesh_loopback": mesh_loopback,
    "tls_listener": tls_listener,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the files on disk, write nothing")
    args = parser.parse_args()

    stale = []
    for target, make in TARGETS.items():
        directory = os.path.join(CORPUS, target)
        files = make()
        if args.check:
            present = set(os.listdir(directory)) if os.path.isdir(directory) else set()
            for name in sorted(present - set(files)):
                stale.append(f"{target}/{name}: not written by this script")
            for name, data in files.items():
                path = os.path.join(directory, name)
                if not os.path.isfile(path) or open(path, "rb").read() != data:
                    stale.append(f"{target}/{name}: missing or different")
            continue
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):
            if name not in files:
                os.remove(os.path.join(directory, name))
        for name, data in files.items():
            with open(os.path.join(directory, name), "wb") as out:
                out.write(data)
        print(f"{target}: {len(files)} files, {sum(map(len, files.values()))} bytes")
    if stale:
        print("the seed corpus is not what make_corpus.py writes (run it):", file=sys.stderr)
        for line in stale:
            print("  " + line, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
