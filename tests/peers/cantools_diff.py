#!/usr/bin/env python3
"""cantools as the independent reference for hilrig's DBC codec (driven by tests/can_peers.rs).

    cantools_diff.py generate --frames N --seed S DBC...   random frames, decoded by cantools
    cantools_diff.py decode < frames.jsonl                  decode frames given on stdin

`generate` writes one JSON object per line:
    {"dbc": PATH, "message": NAME, "id": N, "extended": BOOL, "data": HEX, "values": {...}}
Data bytes are random; a multiplexed message gets one of the multiplexor values its
signals use (nested multiplexors: frames are drawn until cantools decodes one), so every
frame is decodable. `decode` reads lines with "dbc", "id",
"extended" and "data" and answers each with {"values": {...}} or {"error": TEXT}.
Values are physical (scaling on, value tables off), each written as the 64 bits of the
IEEE double it converts to, so that no decimal text stands between the two codecs.
"""
import json
import random
import struct
import sys

import cantools

_DBS = {}


def database(path):
    if path not in _DBS:
        _DBS[path] = cantools.database.load_file(path)
    return _DBS[path]


def plain(values):
    """Each value as the bits of the IEEE double it is (exact through JSON)."""
    return {name: struct.unpack("<Q", struct.pack("<d", float(v)))[0] for name, v in values.items()}


def bit_positions(sig):
    """(byte, bit) of each bit of a signal, from its DBC start bit and byte order."""
    if sig.byte_order == "little_endian":
        return [(b // 8, b % 8) for b in range(sig.start, sig.start + sig.length)]
    msb = (sig.start // 8) * 8 + 7 - sig.start % 8
    return [((msb + i) // 8, 7 - (msb + i) % 8) for i in range(sig.length)]


def mux_bits(msg):
    """(mask, {value: bits}) of the multiplexor of a multiplexed message, or None.

    Messages with nested multiplexors (extended multiplexing) return "retry": their frames
    are drawn at random until cantools decodes one (every multiplexor on the path has a
    value that selects signals)."""
    mux = [s for s in msg.signals if s.is_multiplexer]
    if not mux:
        return None
    if len(mux) > 1:
        return "retry"
    mux = mux[0]
    values = sorted({v for s in msg.signals for v in (s.multiplexer_ids or [])})
    if not values:
        return None  # a multiplexor that selects nothing: every value decodes
    zeros = {s.name: 0 for s in msg.signals}
    mask = bytearray(msg.length)
    for byte, bit in bit_positions(mux):
        mask[byte] |= 1 << bit
    by_value = {v: msg.encode({**zeros, mux.name: v}, scaling=False, strict=False) for v in values}
    return bytes(mask), by_value


def generate(args):
    frames = int(args[args.index("--frames") + 1])
    seed = int(args[args.index("--seed") + 1])
    paths = [a for i, a in enumerate(args) if not a.startswith("--") and args[i - 1] not in ("--frames", "--seed")]
    rng = random.Random(seed)
    out = sys.stdout
    for path in paths:
        db = database(path)
        msgs = [(m, mux_bits(m)) for m in db.messages]
        for _ in range(frames):
            msg, mux = msgs[rng.randrange(len(msgs))]
            for _ in range(10000):
                data = rng.randbytes(msg.length)
                if mux == "retry":
                    try:
                        values = msg.decode(data, decode_choices=False, scaling=True)
                    except cantools.database.errors.DecodeError:
                        continue
                    break
                if mux:
                    mask, by_value = mux
                    bits = by_value[rng.choice(sorted(by_value))]
                    data = bytes((d & ~m) | b for d, m, b in zip(data, mask, bits))
                try:
                    values = msg.decode(data, decode_choices=False, scaling=True)
                except cantools.database.errors.DecodeError:
                    continue  # e.g. a plain signal sharing the multiplexor's bits
                break
            else:
                sys.exit(f"{path}: no decodable frame of {msg.name} in 10000 draws")
            out.write(json.dumps({
                "dbc": path,
                "message": msg.name,
                "id": msg.frame_id,
                "extended": msg.is_extended_frame,
                "data": data.hex(),
                "values": plain(values),
            }) + "\n")


def decode():
    for line in sys.stdin:
        if not line.strip():
            continue
        q = json.loads(line)
        try:
            db = database(q["dbc"])
            key = (q["id"], q["extended"])
            msg = next(m for m in db.messages if (m.frame_id, m.is_extended_frame) == key)
            values = msg.decode(bytes.fromhex(q["data"]), decode_choices=False, scaling=True)
            sys.stdout.write(json.dumps({"values": plain(values)}) + "\n")
        except Exception as e:  # the answer says what went wrong; the caller fails the test
            sys.stdout.write(json.dumps({"error": f"{type(e).__name__}: {e}"}) + "\n")


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("generate", "decode"):
        sys.exit(__doc__)
    if sys.argv[1] == "generate":
        generate(sys.argv[2:])
    else:
        decode()


if __name__ == "__main__":
    main()
