#!/usr/bin/env python3
"""python-can's slcan interface as the peer of hilrig's SLCAN backend (driven by tests/can_peers.rs).

    slcan_peer.py PORT

Both python-can and hilrig speak the host side of SLCAN, so this script first plays the
adapter for hilrig's opening commands (it prints LISTENING once the port is open, then
answers each command with CR, as an adapter does), then
opens python-can's slcan bus on the same port. It prints READY, sends the frames in SEND,
reads from stdin how many frames hilrig will send, prints each frame it receives as a JSON
line, and prints DONE when it has them all (or after 20 s).
"""
import json
import sys
import time

import can
import serial

SEND = [
    can.Message(arbitration_id=0x123, data=[1, 2, 3], is_extended_id=False),
    can.Message(arbitration_id=0x1F334455, data=[], is_extended_id=True),
    can.Message(arbitration_id=0x7FF, is_extended_id=False, is_remote_frame=True, dlc=2),
    can.Message(arbitration_id=0x000, data=list(range(8)), is_extended_id=False),
    can.Message(arbitration_id=0x321, data=list(range(12)), is_fd=True, is_extended_id=False),
    can.Message(
        arbitration_id=0x1ABCDE,
        data=[0xA5] * 64,
        is_fd=True,
        bitrate_switch=True,
        is_extended_id=True,
    ),
]


def answer_open(port):
    """Answer CR to each command until the host opens the channel (O or L)."""
    with serial.Serial(port, 115200, timeout=0.1) as s:
        print("LISTENING", flush=True)
        line = b""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            b = s.read(1)
            if not b:
                continue
            if b != b"\r":
                line += b
                continue
            s.write(b"\r")
            s.flush()
            if line in (b"O", b"L"):
                return
            line = b""
    sys.exit("the host never opened the channel")


def main():
    port = sys.argv[1]
    answer_open(port)
    bus = can.Bus(interface="slcan", channel=port, bitrate=500000, sleep_after_open=0)
    print("READY", flush=True)
    expected = int(sys.stdin.readline())
    for msg in SEND:
        bus.send(msg)
    got = 0
    deadline = time.monotonic() + 20
    while got < expected and time.monotonic() < deadline:
        msg = bus.recv(timeout=0.2)
        if msg is None:
            continue
        got += 1
        print(json.dumps({
            "id": msg.arbitration_id,
            "extended": msg.is_extended_id,
            "remote": msg.is_remote_frame,
            "fd": msg.is_fd,
            "brs": msg.bitrate_switch,
            "data": bytes(msg.data).hex(),
        }), flush=True)
    print("DONE", flush=True)
    bus.shutdown()


if __name__ == "__main__":
    main()
