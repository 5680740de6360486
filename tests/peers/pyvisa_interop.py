"""pyvisa-py (an independent SCPI client) against every simulated instrument over TCP.

Reads {"dialect-id": port, ...} as JSON on stdin. For each instrument, talks to it the way
its programming guide says, with the model's own commands, and checks the answers a real
unit of that model gives: the *IDN? fields, a setting read back in the model's number
format, a measurement, the output/input switched and read back in the model's boolean
format, and the error queue (-113 for an unknown header, -222 for a value out of range,
then "no error"). The expectations below are written from the vendors' documentation
(see shared/reference/instruments.md), not from hilrig's dialect files.

Prints one line per check ("ok ..." / "FAIL ...") and a JSON summary of the values set on
the last line; exits 1 when a check failed.
"""

import json
import re
import sys

import pyvisa

NR3 = r"-?\d\.\d{6}E[+-]\d\d"
NR3_SIGNED = r"[+-]\d\.\d{6}E[+-]\d\d"


def nr2(decimals):
    return r"-?\d+\.\d{%d}" % decimals


# id: (maker, model prefix, error query, "no error" reply, setup, setting, (readback query,
#      exact reply), measure query, measure reply regex, output on, output off,
#      (output query, on reply, off reply), out-of-range setting, value set)
MODELS = {
    "ea-psb": dict(
        maker="EA Elektro-Automatik", model="PSB 9080-60",
        err="SYST:ERR?", no_error='0,"No error"',
        setup=["SYST:LOCK 1"],
        set="SOUR:VOLT 12.5", readback=("SOUR:VOLT?", "12.50 V"),
        measure=("MEAS:ARR?", r"\d+\.\d\d V, \d+\.\d\d A, \d+\.\d W"),
        on="OUTP ON", off="OUTP OFF", state=("OUTP?", "ON", "OFF"),
        bad="SOUR:VOLT 500", value=12.5,
    ),
    "rigol-dl3000": dict(
        maker="RIGOL TECHNOLOGIES", model="DL3021",
        err=":SYST:ERR?", no_error='0,"No error"',
        setup=[":SOUR:FUNC CURR"],
        set=":SOUR:CURR 2.5", readback=(":SOUR:CURR?", "2.500000E+00"),
        measure=(":MEAS:VOLT?", NR3),
        on=":SOUR:INP:STAT ON", off=":SOUR:INP:STAT OFF",
        state=(":SOUR:INP:STAT?", "1", "0"),
        bad=":SOUR:CURR 500", value=2.5,
    ),
    "keysight-e36300": dict(
        maker="Keysight Technologies", model="E36312",
        err="SYST:ERR?", no_error='+0,"No error"',
        setup=[],
        set="VOLT 5,(@1)", readback=("VOLT? (@1)", "+5.000000E+00"),
        measure=("MEAS:VOLT? (@1)", NR3_SIGNED),
        on="OUTP ON,(@1)", off="OUTP OFF,(@1)", state=("OUTP? (@1)", "1", "0"),
        bad="VOLT 7,(@1)", value=5.0,
    ),
    "keysight-n6700": dict(
        maker="Keysight Technologies", model="N670",
        err="SYST:ERR?", no_error='+0,"No error"',
        setup=[],
        set="VOLT 12.5,(@1)", readback=("VOLT? (@1)", "+1.250000E+01"),
        measure=("MEAS:VOLT? (@1)", NR3_SIGNED),
        on="OUTP ON,(@1)", off="OUTP OFF,(@1)", state=("OUTP? (@1)", "1", "0"),
        bad="VOLT 70,(@1)", value=12.5,
    ),
    "keysight-rp7900": dict(
        maker="Keysight Technologies", model="RP79",
        err="SYST:ERR?", no_error='+0,"No error"',
        setup=["FUNC VOLT"],
        set="VOLT 12.5", readback=("VOLT?", "+1.250000E+01"),
        measure=("MEAS:VOLT?", NR3_SIGNED),
        on="OUTP ON", off="OUTP OFF", state=("OUTP?", "1", "0"),
        bad="VOLT 90", value=12.5,
    ),
    "rigol-dp800": dict(
        maker="RIGOL TECHNOLOGIES", model="DP832",
        err=":SYST:ERR?", no_error='0,"No error"',
        setup=[],
        set=":SOUR2:VOLT 12.5", readback=(":SOUR2:VOLT?", "12.5000"),
        measure=(":MEAS:ALL? CH2", ",".join([nr2(4)] * 3)),
        on=":OUTP CH2,ON", off=":OUTP CH2,OFF", state=(":OUTP? CH2", "ON", "OFF"),
        bad=":SOUR3:VOLT 6", value=12.5,
    ),
    "rs-hmp4040": dict(
        maker="HAMEG", model="HMP4040",
        err="SYST:ERR?", no_error='0,"No error"',
        setup=["INST:NSEL 2"],
        set="VOLT 12.5", readback=("VOLT?", "12.500"),
        measure=("MEAS:VOLT?", nr2(3)),
        on="OUTP:SEL ON;:OUTP:GEN ON", off="OUTP:SEL OFF",
        state=("OUTP:SEL?", "1", "0"),
        bad="VOLT 40", value=12.5,
    ),
    "rs-nge100": dict(
        maker="Rohde&Schwarz", model="NGE10",
        err="SYST:ERR?", no_error='0,"No error"',
        setup=["INST OUT2"],
        set="VOLT 12.5", readback=("VOLT?", "12.500"),
        measure=("MEAS:VOLT?", nr2(3)),
        on="OUTP:GEN ON;:OUTP:SEL ON", off="OUTP:SEL OFF",
        state=("OUTP:SEL?", "1", "0"),
        bad="VOLT 40", value=12.5,
    ),
    "siglent-sdl1000x": dict(
        maker="Siglent Technologies", model="SDL10",
        err="SYST:ERR?", no_error='0,"No error"',
        setup=[":SOUR:FUNC CURR"],
        set=":SOUR:CURR 2.5", readback=(":SOUR:CURR?", "2.500000"),
        measure=(":MEAS:VOLT?", nr2(6)),
        on=":SOUR:INP:STAT ON", off=":SOUR:INP:STAT OFF",
        state=(":SOUR:INP:STAT?", "1", "0"),
        bad=":SOUR:CURR 50", value=2.5,
    ),
    "chroma-63600": dict(
        maker="Chroma", model="63600",
        err="SYST:ERR?", no_error='0,"No error"',
        setup=["CHAN 1", "MODE CCH"],
        set="CURR:STAT:L1 12.5", readback=("CURR:STAT:L1?", "12.5000"),
        measure=("MEAS:VOLT?", nr2(4)),
        on="LOAD ON", off="LOAD OFF", state=("LOAD?", "1", "0"),
        bad="CURR:STAT:L1 500", value=12.5,
    ),
    "bloomy-abs": dict(
        maker="Bloomy", model="BS1201",
        err="SYST:ERR?", no_error='0,"No error"',
        setup=[],
        set="SOUR3:VOLT 3.65", readback=("SOUR3:VOLT?", "3.650000E+00"),
        measure=("MEAS3:VOLT?", NR3),
        on="OUTP3 ON", off="OUTP3 OFF", state=("OUTP3?", "1", "0"),
        bad="SOUR3:VOLT 6", value=3.65,
    ),
}

failures = 0


def check(dialect, what, ok, detail=""):
    global failures
    if ok:
        print(f"ok {dialect}: {what}")
    else:
        failures += 1
        print(f"FAIL {dialect}: {what}: {detail}")


def main():
    ports = json.load(sys.stdin)
    rm = pyvisa.ResourceManager("@py")
    for dialect, port in sorted(ports.items()):
        m = MODELS.get(dialect)
        if m is None:
            check(dialect, "has expectations in pyvisa_interop.py", False, "none written")
            continue
        inst = rm.open_resource(
            f"TCPIP::127.0.0.1::{port}::SOCKET",
            read_termination="\n",
            write_termination="\n",
            timeout=2000,
        )
        try:
            idn = inst.query("*IDN?").split(",")
            check(dialect, "*IDN? has four fields", len(idn) == 4, idn)
            check(dialect, "*IDN? maker", idn[0] == m["maker"], idn[0])
            check(dialect, "*IDN? model", idn[1].startswith(m["model"]), idn[1])

            inst.write("*CLS")
            for command in m["setup"]:
                inst.write(command)
            inst.write(m["set"])
            reply = inst.query(m["readback"][0])
            check(dialect, f"{m['readback'][0]} reads back the setting", reply == m["readback"][1],
                  repr(reply))

            inst.write(m["on"])
            reply = inst.query(m["state"][0])
            check(dialect, f"{m['state'][0]} after switching on", reply == m["state"][1], repr(reply))
            reply = inst.query(m["measure"][0])
            check(dialect, f"{m['measure'][0]} in the model's format",
                  re.fullmatch(m["measure"][1], reply) is not None, repr(reply))
            inst.write(m["off"])
            reply = inst.query(m["state"][0])
            check(dialect, f"{m['state'][0]} after switching off", reply == m["state"][2], repr(reply))

            reply = inst.query(m["err"])
            check(dialect, "error queue empty after valid commands", reply == m["no_error"], repr(reply))
            inst.write("FOO:BAR 1")
            reply = inst.query(m["err"])
            check(dialect, "unknown header is -113", reply == '-113,"Undefined header"', repr(reply))
            inst.write(m["bad"])
            reply = inst.query(m["err"])
            check(dialect, "out of range is -222", reply == '-222,"Data out of range"', repr(reply))
            reply = inst.query(m["err"])
            check(dialect, "queue empty again", reply == m["no_error"], repr(reply))
            reply = inst.query(m["readback"][0])
            check(dialect, "the rejected value was not applied", reply == m["readback"][1], repr(reply))
            inst.write(m["on"])
            inst.query("*OPC?")
        except pyvisa.errors.VisaIOError as e:
            check(dialect, "talks to pyvisa-py", False, str(e))
        finally:
            inst.close()
    rm.close()
    print(json.dumps({d: MODELS[d]["value"] for d in ports if d in MODELS}))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
