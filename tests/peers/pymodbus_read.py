#!/usr/bin/env python3
"""pymodbus as the independent Modbus client (driven by tests/it/modbus_sim.rs).

    pymodbus_read.py HOST PORT UNIT < registers.json

stdin: a JSON list of {"name", "function" (coil|discrete_input|holding|input), "address",
"type" (bool|u16|i16|u32|i32), "scale", "offset", "word_order" (big|little)}. Reads each
register with pymodbus and prints one JSON object {name: physical value}; decoding (types,
scale, word order) is done here, independently of hilrig.
"""
import inspect
import json
import sys

from pymodbus.client import ModbusTcpClient


def read(client, fn, address, count, unit):
    method = {
        "coil": client.read_coils,
        "discrete_input": client.read_discrete_inputs,
        "holding": client.read_holding_registers,
        "input": client.read_input_registers,
    }[fn]
    params = inspect.signature(method).parameters
    unit_kw = "device_id" if "device_id" in params else "slave"
    rr = method(address, count=count, **{unit_kw: unit})
    if rr.isError():
        raise SystemExit(f"pymodbus: {fn} {address:#06x} x {count}: {rr}")
    if fn in ("coil", "discrete_input"):
        return [int(b) for b in rr.bits[:count]]
    return list(rr.registers)


def physical(reg, words):
    t = reg["type"]
    if t in ("bool", "u16"):
        raw = words[0]
    elif t == "i16":
        raw = words[0] - 0x10000 if words[0] & 0x8000 else words[0]
    else:
        hi, lo = (words[0], words[1]) if reg["word_order"] == "big" else (words[1], words[0])
        raw = (hi << 16) | lo
        if t == "i32" and raw & 0x80000000:
            raw -= 1 << 32
    return raw * reg["scale"] + reg["offset"]


def main():
    host, port, unit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    regs = json.load(sys.stdin)
    client = ModbusTcpClient(host, port=port, timeout=2)
    if not client.connect():
        raise SystemExit(f"pymodbus: cannot connect to {host}:{port}")
    out = {}
    for reg in regs:
        count = 2 if reg["type"] in ("u32", "i32") else 1
        out[reg["name"]] = physical(reg, read(client, reg["function"], reg["address"], count, unit))
    client.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
