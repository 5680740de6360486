"""Round-trip latency of *IDN? with pyvisa-py, for the comparison in BENCHMARKS.md.

    python3 tests/peers/pyvisa_ping.py PORT [COUNT]

Opens TCPIP::127.0.0.1::PORT::SOCKET with pyvisa-py (LF terminators, as hilrig uses),
sends one untimed *IDN?, then COUNT timed ones (default 2000), and prints min, median and
p99 (nearest rank) in milliseconds, the same statistics `hilrig instruments ping` prints.
"""

import math
import statistics
import sys
import time

import pyvisa


def main():
    port = int(sys.argv[1])
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    rm = pyvisa.ResourceManager("@py")
    inst = rm.open_resource(
        f"TCPIP::127.0.0.1::{port}::SOCKET",
        read_termination="\n",
        write_termination="\n",
        timeout=2000,
    )
    inst.query("*IDN?")
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        inst.query("*IDN?")
        samples.append(time.perf_counter() - started)
    inst.close()
    rm.close()
    samples.sort()
    p99 = samples[max(1, math.ceil(len(samples) * 0.99)) - 1]
    ms = lambda s: s * 1e3
    print(
        f"pyvisa-py {pyvisa.__version__}: {count} x *IDN? over 127.0.0.1:{port}: "
        f"min {ms(samples[0]):.3f} ms, median {ms(statistics.median(samples)):.3f} ms, "
        f"p99 {ms(p99):.3f} ms (mean {ms(statistics.fmean(samples)):.3f} ms, "
        f"max {ms(samples[-1]):.3f} ms)"
    )


if __name__ == "__main__":
    main()
