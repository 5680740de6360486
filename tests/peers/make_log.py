#!/usr/bin/env python3
"""Write a candump -L log of random frames for the messages of a DBC (for benchmarks).

    python3 tests/peers/make_log.py fixtures/dbc/sim-bms.dbc 1000000 > /tmp/bench.log

Only the standard library is used: ids and lengths are read from the `BO_` lines, so the
generator does not depend on the decoder being measured. The multiplexor of a multiplexed
message (little-endian multiplexors only) gets one of the values its `mN` signals use, so
every frame is decodable. Frames are 1 ms apart, from a fixed seed, so the same command
writes the same log.
"""
import random
import re
import sys


def messages(dbc_path):
    """(id, extended, size, multiplexor) per message; multiplexor = (start, size, values)."""
    out = []
    with open(dbc_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = re.match(r"\s*BO_\s+(\d+)\s+(\w+)\s*:\s*(\d+)", line)
            if m and m.group(2) != "VECTOR__INDEPENDENT_SIG_MSG":
                raw = int(m.group(1))
                extended = bool(raw & 0x80000000)
                out.append([raw & 0x1FFFFFFF, extended, int(m.group(3)), None, set()])
                continue
            s = re.match(r"\s*SG_\s+\w+\s+(M|m(\d+))\s*:\s*(\d+)\|(\d+)@1", line)
            if s and out:
                if s.group(1) == "M":
                    out[-1][3] = (int(s.group(3)), int(s.group(4)))
                else:
                    out[-1][4].add(int(s.group(2)))
    return [
        (i, e, size, (mux[0], mux[1], sorted(vals)) if mux and vals else None)
        for i, e, size, mux, vals in out
    ]


def set_mux(data, mux, rng):
    start, size, values = mux
    value = values[rng.randrange(len(values))]
    word = int.from_bytes(data, "little")
    mask = ((1 << size) - 1) << start
    word = (word & ~mask) | (value << start)
    return word.to_bytes(len(data), "little")


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: make_log.py DBC FRAMES > LOG")
    msgs = messages(sys.argv[1])
    count = int(sys.argv[2])
    rng = random.Random(20261121)
    t0 = 1_700_000_000_000_000  # microseconds
    w = sys.stdout.write
    for i in range(count):
        ident, extended, size, mux = msgs[rng.randrange(len(msgs))]
        data = rng.randbytes(size)
        if mux:
            data = set_mux(data, mux, rng)
        data = data.hex().upper()
        us = t0 + i * 1000
        idtxt = f"{ident:08X}" if extended else f"{ident:03X}"
        w(f"({us // 1_000_000}.{us % 1_000_000:06d}) can0 {idtxt}#{data}\n")


if __name__ == "__main__":
    main()
