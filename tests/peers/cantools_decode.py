#!/usr/bin/env python3
"""The reference decode loop for BENCHMARKS.md: a candump -L log through a DBC with cantools.

    python3 tests/peers/cantools_decode.py fixtures/dbc/sim-bms.dbc /tmp/bench.log [--csv OUT]

Parses each line, looks the frame up by id and decodes it with `Database.decode_message`
(scaling applied, value-table labels off). With --csv it also writes one row per frame in
the same wide layout as `hilrig can decode`, so both sides do the same work. Prints frames,
seconds and frames/s to stderr.
"""
import csv
import sys
import time

import cantools


def main():
    args = sys.argv[1:]
    out_path = None
    if "--csv" in args:
        i = args.index("--csv")
        out_path = args[i + 1]
        del args[i : i + 2]
    dbc_path, log_path = args
    db = cantools.database.load_file(dbc_path, strict=False)
    by_id = {}
    for m in db.messages:
        by_id[(m.frame_id, m.is_extended_frame)] = m
    columns = [(m.name, s.name) for m in db.messages for s in m.signals]
    index = {c: i for i, c in enumerate(columns)}

    writer = None
    out = None
    if out_path:
        out = open(out_path, "w", newline="")
        writer = csv.writer(out)
        writer.writerow(["time_s", "interface", "id", "message"] + [f"{m}.{s}" for m, s in columns])

    start = time.perf_counter()
    decoded = 0
    unknown = 0
    with open(log_path) as f:
        for line in f:
            stamp, iface, frame = line.split()
            ident, data = frame.split("#", 1)
            key = (int(ident, 16), len(ident) == 8)
            msg = by_id.get(key)
            if msg is None:
                unknown += 1
                continue
            values = msg.decode(bytes.fromhex(data), decode_choices=False)
            decoded += 1
            if writer is not None:
                row = [""] * len(columns)
                for name, value in values.items():
                    row[index[(msg.name, name)]] = value
                writer.writerow([stamp[1:-1], iface, ident, msg.name] + row)
    seconds = time.perf_counter() - start
    if out is not None:
        out.close()
    print(
        f"cantools {cantools.__version__}: {decoded} frames decoded, {unknown} unknown, "
        f"{seconds:.2f} s, {decoded / seconds:,.0f} frames/s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
