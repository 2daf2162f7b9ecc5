"""The ``refmeter`` command.

The CLI is the top of the import graph: it is the one module under ``soft`` that
also imports ``refmeter.sim`` and ``refmeter.boards``, and only inside the
subcommands that need them.

Exit codes: 0 done; 1 the meter refused a request or is not the meter expected;
2 bad command line (including an unknown register or a value that does not fit);
3 the link failed (cannot open, no reply); 4 a toolchain step failed (synthesis,
no programmer, programming); 130 interrupted.
"""

import argparse
import csv
import datetime
import json
import logging
import math
import os
import signal
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from refmeter.gateware.interlock import Action, Reason
from refmeter.gateware.security.authority import Authority
from refmeter.gateware.security.frames import SealKind
from refmeter.gateware.security.unit import SecurityResult

from .calibration import calibrate_gain, calibrate_phase_angle
from .device import Meter, format_eui64, utc_datetime
from .events import read_events
from .measurements import phases, read_phase, read_totals
from .errors import LinkError, MeterError
from .pki.commands import add_commands as add_pki_commands
from .profile import CSV_COLUMNS, ProfileRecord, read_profile
from .registers import METER_REGISTERS, RegisterValue, decode, register_map, registers_markdown
from .security import KeySet, provision, seal_reading, send_command, zeroise
from .switch import read_interlock_events, read_switch_status, request_switch
from .tariffs.commands import add_commands as add_tariff_commands
from .transport import DEFAULT_BAUD, SerialTransport, Transport

__all__ = ["main"]

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_LINK, EXIT_TOOLCHAIN, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130

logger = logging.getLogger("refmeter")


#: What a subcommand runs: it returns the exit code. Command groups that live beside
#: their subject add theirs through the same `command` function as the ones here.
Command = Callable[[argparse.Namespace], int]


class _ToolchainError(Exception):
    """A build or programming step failed (exit code 4)."""


def _parser() -> argparse.ArgumentParser:
    def command(name: str, run: Command, summary: str, examples: str) -> argparse.ArgumentParser:
        parser = subcommands.add_parser(
            name, help=summary, description=summary,
            epilog="examples:\n" + textwrap.indent(textwrap.dedent(examples).strip(), "  "),
            formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.set_defaults(run=run)
        return parser

    parser = argparse.ArgumentParser(
        prog="refmeter",
        description="Drive a refmeter smart meter, on a board or in simulation.",
        epilog=textwrap.dedent("""\
            examples:
              refmeter demo                                  start a simulated meter and read it
              refmeter sim --port 7700                       serve a simulated meter's UART on TCP
              refmeter --url socket://127.0.0.1:7700 read    read it, as a board would be read
              refmeter build --board icebreaker              synthesise for the iCEBreaker

            exit codes: 0 done, 1 meter refused, 2 bad usage, 3 link failed,
            4 toolchain failed, 130 interrupted"""),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="say more (frames, retries)")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="errors only")
    parser.add_argument(
        "--url", default=os.environ.get("REFMETER_URL", "/dev/ttyUSB0"),
        help="where the meter is: a serial port (/dev/ttyUSB0), socket://HOST:PORT for "
             "`refmeter sim`, or sim: / sim:amaranth / sim:verilator for an in-process "
             "simulation (default: $REFMETER_URL or /dev/ttyUSB0)")
    parser.add_argument("--baud", type=int, default=DEFAULT_BAUD,
                        help=f"serial rate of the board's bitstream (default {DEFAULT_BAUD})")
    # A board answers in milliseconds; a meter simulated in Python (`refmeter sim
    # --simulator amaranth`) can take a second or two on a busy machine.
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="seconds to wait for each reply (default 5)")
    parser.add_argument("--tries", type=int, default=3, help="tries per request before giving up")
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = command("demo", _cmd_demo, "start a simulated meter and read it through socket://, as a board", """
        refmeter demo
        refmeter demo --simulator amaranth""")
    _simulator_options(demo)

    sim = command("sim", _cmd_sim, "run the meter gateware in simulation and serve its UART on a TCP port", """
        refmeter sim --port 7700                   then: refmeter --url socket://127.0.0.1:7700 read
        refmeter sim --port 0 --json               pick a free port, print {"url": ...}
        refmeter sim --simulator amaranth          no C++ compiler needed
        refmeter sim --current 10 --phase-angle 60 measure 230 V, 10 A at PF 0.5 lagging
        refmeter sim --load load.json --seal-open  a load with harmonics; calibration allowed""")
    sim.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sim.add_argument("--port", type=int, default=7700, help="TCP port; 0 picks a free one (default 7700)")
    sim.add_argument("--json", action="store_true", help="announce the URL as one JSON line")
    _simulator_options(sim)

    read = command("read", _cmd_read, "read registers (all readable ones by default)", """
        refmeter --url /dev/ttyUSB1 read
        refmeter --url socket://127.0.0.1:7700 read utc_time scratch
        refmeter --url sim: read --json""")
    read.add_argument("registers", nargs="*", metavar="REGISTER", help="register names")
    read.add_argument("--json", action="store_true", help="machine-readable output")

    write = command("write", _cmd_write, "write one register", """
        refmeter --url socket://127.0.0.1:7700 write scratch 0xC0FFEE
        refmeter --url /dev/ttyUSB1 write scratch 42""")
    write.add_argument("register", help="register name")
    write.add_argument("value", help="a number (0x.. for hex) or FIELD=NUMBER,FIELD=NUMBER")

    profile = command("profile", _cmd_profile, "read the meter's load profile: energy per interval, oldest first", """
        refmeter --url /dev/ttyUSB1 profile
        refmeter --url socket://127.0.0.1:7700 profile --json
        refmeter --url sim: profile --csv > profile.csv""")
    profile_format = profile.add_mutually_exclusive_group()
    profile_format.add_argument("--json", action="store_true", help="machine-readable output")
    profile_format.add_argument("--csv", action="store_true",
                                help="one CSV row per record, times in ISO 8601 UTC")

    events = command("events", _cmd_events, "read the meter's voltage event log: sags, swells and "
                               "interruptions, oldest first", """
        refmeter --url socket://127.0.0.1:7700 events
        refmeter --url /dev/ttyUSB1 events --json""")
    events.add_argument("--json", action="store_true", help="machine-readable output")

    calibrate = command("calibrate", _cmd_calibrate, "one-point gain (and phase) calibration against a "
                                     "reference load, with the seal open", """
        refmeter --url /dev/ttyUSB1 calibrate --voltage 230 --current 10 --keys keys.json
        refmeter --url /dev/ttyUSB1 calibrate --voltage 230 --current 10 --phase-angle 60 --keys keys.json
        refmeter --url socket://127.0.0.1:7700 calibrate --voltage 230 --current 10 --windows 10 --keys keys.json""")
    calibrate.add_argument("--voltage", type=float, required=True,
                           help="the reference's RMS voltage, V (a calibrated source or meter)")
    calibrate.add_argument("--current", type=float, required=True,
                           help="the reference's RMS current, A")
    calibrate.add_argument("--phase-angle", type=float,
                           help="the reference's angle, degrees the current lags (e.g. 60 for "
                                "PF 0.5 inductive): also calibrate the phase")
    calibrate.add_argument("--frequency", type=float, default=50.0,
                           help="the reference's line frequency, Hz (default 50)")
    calibrate.add_argument("--phase", default="l1", help="phase to calibrate (default l1)")
    calibrate.add_argument("--windows", type=int, default=5,
                           help="measurement windows to average (default 5)")
    calibrate.add_argument("--keys", type=Path, required=True,
                           help="the meter's key file: calibration is written by commands "
                                "under its local key")

    keys = command("keys", _cmd_keys, "provision, check or erase the meter's AES-128 key slots", """
        refmeter --url socket://127.0.0.1:7700 keys provision       (seal open) new random keys,
                                                                     saved to keys-<EUI-64>.json
        refmeter --url socket://127.0.0.1:7700 keys status
        refmeter --url socket://127.0.0.1:7700 keys zeroise         (seal open) erase every slot""")
    keys.add_argument("action", choices=("provision", "status", "zeroise"))
    _keys_option(keys, required=False)

    set_clock = command("set-clock", _cmd_set_clock, "set the meter's UTC clock by an authenticated command", """
        refmeter --url socket://127.0.0.1:7700 set-clock --keys keys-02-52-45-46-00-00-00-01.json
        refmeter --url /dev/ttyUSB1 set-clock --utc 2026-11-21T12:00:00Z --authority supplier --keys k.json""")
    set_clock.add_argument("--utc", help="ISO 8601 time with a zone (default: this host's clock)")
    _keys_option(set_clock, required=True)
    _authority_option(set_clock, default="local")

    seal = command("seal", _cmd_seal, "have the meter seal a reading with its reading key, and check it", """
        refmeter --url socket://127.0.0.1:7700 seal --snapshot --keys keys.json
        refmeter --url socket://127.0.0.1:7700 seal --profile 12 --keys keys.json --json""")
    what = seal.add_mutually_exclusive_group(required=True)
    what.add_argument("--snapshot", action="store_true", help="the clock and energy totals, now")
    what.add_argument("--profile", type=int, metavar="N", help="load-profile record number N")
    seal.add_argument("--json", action="store_true", help="machine-readable output")
    _keys_option(seal, required=True)

    switch = command("switch", _cmd_switch, "the load-switch interlock: its status and log, and "
                                            "switching requests as authenticated commands", """
        refmeter --url socket://127.0.0.1:7700 switch status
        refmeter --url socket://127.0.0.1:7700 switch disconnect --authority supplier --id 7 --keys k.json
        refmeter --url socket://127.0.0.1:7700 switch disconnect --authority broker --id 7 --keys k.json
        refmeter --url socket://127.0.0.1:7700 switch arm --authority broker --id 8 --keys k.json
        refmeter --url socket://127.0.0.1:7700 switch aux-reduce --keys k.json
        refmeter --url socket://127.0.0.1:7700 switch log --json""")
    switch.add_argument("action", choices=("status", "log", *_SWITCH_REQUESTS),
                        help="status, log, or a request: disconnect (remote; needs the "
                             "supplier and the broker with one id), arm (remote reconnect: "
                             "the consumer's button completes it), local-disconnect, "
                             "aux-off, aux-reduce, aux-restore")
    switch.add_argument("--id", type=int, default=1, dest="request_id",
                        help="request id, 0-65535: a disconnect's two sources give the same one")
    switch.add_argument("--authority", choices=[authority.slot_name for authority in Authority],
                        help="key slot to sign the request with (default: supplier; "
                             "local-disconnect: local)")
    switch.add_argument("--json", action="store_true", help="machine-readable output")
    _keys_option(switch, required=False)

    add_pki_commands(command)

    regs = command("regs", _cmd_regs, "print the register map this host expects", """
        refmeter regs
        refmeter regs --phases 3 --markdown > docs/registers.md""")
    regs.add_argument("--phases", type=int, choices=(1, 3), default=1,
                      help="the map of a single-phase (default) or a three-phase meter")
    regs_format = regs.add_mutually_exclusive_group()
    regs_format.add_argument("--json", action="store_true", help="machine-readable output")
    regs_format.add_argument("--markdown", action="store_true", help="the docs/registers.md page")

    build = command("build", _cmd_build, "synthesise the meter for a board and report its size and speed", """
        refmeter build --board icebreaker
        refmeter build --board ulx3s --json > ulx3s.json""")
    _board_option(build)
    build.add_argument("--build-dir", type=Path, help="where outputs go (default build/BOARD)")
    build.add_argument("--json", action="store_true", help="machine-readable report")

    program = command("program", _cmd_program, "load a built bitstream onto a board", """
        refmeter program --board icebreaker
        refmeter program --board ulx3s --flash       keep it across power cycles""")
    _board_option(program)
    program.add_argument("--bitstream", type=Path, help="bitstream file (default: build/BOARD/...)")
    program.add_argument("--flash", action="store_true",
                         help="write the configuration flash instead of the FPGA only")
    add_tariff_commands(command)
    return parser


def _simulator_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--simulator", choices=("auto", "amaranth", "verilator"), default="auto",
                        help="amaranth (pure Python) or verilator (compiled, ~500x faster); "
                             "auto picks verilator when a C++ compiler is present")
    parser.add_argument("--phases", type=int, choices=(1, 3), default=1,
                        help="simulate a single-phase meter (as on the iCEBreaker) or a "
                             "three-phase one with its neutral (as on the ULX3S); default 1")
    load = parser.add_argument_group("the simulated load (on every phase, 120 degrees apart)")
    load.add_argument("--voltage", type=float, default=230.0, help="RMS voltage, V (default 230)")
    load.add_argument("--current", type=float, default=5.0, help="RMS current, A (default 5)")
    load.add_argument("--phase-angle", type=float, default=0.0,
                      help="degrees the current lags the voltage: 60 is PF 0.5 inductive, "
                           "-36.87 PF 0.8 capacitive, 180 export (default 0)")
    load.add_argument("--frequency", type=float, default=50.0, help="line frequency, Hz (default 50)")
    load.add_argument("--load", type=Path, metavar="FILE",
                      help="a JSON load (voltage_rms, current_rms, phase_deg, frequency_hz, "
                           "voltage_harmonics, current_harmonics), or a list of one per "
                           "phase, instead of the flags above")
    parser.add_argument("--seal-open", action="store_true",
                        help="open the simulated meter's seal, so calibration can be written")
    parser.add_argument("--uncalibrated", action="store_true",
                        help="measure through a front end with the gain, offset and skew errors "
                             "of one as built (+0.3 %% V, -0.5 %% I), to try calibration on")


def _simulated_load(args: argparse.Namespace):
    """One load for every phase, or a load per phase (a JSON list)."""
    from refmeter.sim.analog import Load
    if args.load is None:
        return Load(args.voltage, args.current, args.phase_angle, args.frequency)
    try:
        document = json.loads(args.load.read_text())
        if not isinstance(document, list):
            return Load.from_json(document)
        if len(document) != args.phases:
            raise ValueError(f"{args.load} has {len(document)} loads for {args.phases} phase(s)")
        return tuple(Load.from_json(phase) for phase in document)
    except OSError as error:
        raise ValueError(f"cannot read the load file: {error}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{args.load} is not JSON: {error}") from None


def _start_simulation(args: argparse.Namespace) -> tuple[str, Transport]:
    """The simulator chosen and a running simulation of the load the options describe."""
    from refmeter.sim.simulators import open_simulation, simulated_meter
    from refmeter.sim.analog import AS_BUILT, FrontEnd
    simulator = _simulator(args.simulator)
    load = _simulated_load(args)
    front_end = AS_BUILT if args.uncalibrated else FrontEnd()
    return simulator, open_simulation(simulator, simulated_meter(phases=args.phases), load=load,
                                      front_end=front_end, seal_open=args.seal_open,
                                      progress=_say)


def _keys_option(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument("--keys", type=Path, required=required,
                        help="the meter's key file (default for provision: keys-<EUI-64>.json)")


def _authority_option(parser: argparse.ArgumentParser, *, default: str) -> None:
    parser.add_argument("--authority", default=default,
                        choices=[authority.slot_name for authority in Authority],
                        help=f"whose key signs the command (default {default})")


def _board_option(parser: argparse.ArgumentParser) -> None:
    from refmeter.boards import BOARDS
    parser.add_argument("--board", required=True, choices=sorted(BOARDS), help="target board")


def _say(message: str) -> None:
    logger.info("%s", message)


def _simulator(choice: str) -> str:
    from refmeter.sim.simulators import default_simulator
    return default_simulator() if choice == "auto" else choice


def _open_transport(args: argparse.Namespace) -> Transport:
    if args.url.startswith("sim:"):
        from refmeter.sim.simulators import open_simulation
        return open_simulation(_simulator(args.url.removeprefix("sim:") or "auto"), progress=_say)
    return SerialTransport(args.url, baudrate=args.baud)


def _open_meter(args: argparse.Namespace) -> Meter:
    meter = Meter(_open_transport(args), timeout=args.timeout, tries=args.tries)
    try:
        meter.check_register_map()
    except BaseException:
        meter.close()
        raise
    return meter


def _plain(value: "int | RegisterValue") -> "int | dict[str, int]":
    return dict(value) if isinstance(value, RegisterValue) else value


#: Registers that are identifiers, shown in hexadecimal; other numbers are quantities.
_HEX_REGISTERS = {"meter_id", "build_hash", "register_map_hash", "scratch"}


def _show(name: str, value: "int | RegisterValue") -> str:
    if isinstance(value, RegisterValue):
        return " ".join(f"{field}={number}" for field, number in value.items())
    if name in _HEX_REGISTERS:
        return f"{value:#0{2 + 2 * METER_REGISTERS[name].size}x}"
    return str(value)


def _cmd_read(args: argparse.Namespace) -> int:
    with _open_meter(args) as meter:
        values = ({name: meter.read(name) for name in args.registers} if args.registers
                  else meter.read_all())
        measurements = [] if args.registers else [read_phase(meter, phase) for phase in phases(meter)]
        totals = read_totals(meter, measurements) if measurements else None
    notes = {}
    if "meter_id" in values:
        notes["meter_id"] = format_eui64(int(values["meter_id"]))
    if isinstance(values.get("utc_time"), RegisterValue):
        notes["utc_time"] = utc_datetime(values["utc_time"]).isoformat(timespec="milliseconds")
    if args.json:
        document = {"url": args.url,
                    "registers": {name: _plain(value) for name, value in values.items()}, **notes}
        if measurements:
            document["measurements"] = {reading.phase: reading.to_json() for reading in measurements}
            document["measurements"]["total"] = totals.to_json()
        print(json.dumps(document, indent=2))
        return EXIT_OK
    print(f"meter at {args.url}")
    for reading in measurements:
        if not reading.windows_completed:
            print(f"  phase {reading.phase}: no measurement yet (the first window takes "
                  f"{reading.window_s:g} s of the meter's time)")
            continue
        power_factor = "-" if reading.power_factor is None else f"{reading.power_factor:.3f}"
        print(f"  phase {reading.phase}: {reading.voltage_rms_v:.2f} V  {reading.current_rms_a:.3f} A  "
              f"{reading.active_power_w:.1f} W  {reading.apparent_power_va:.1f} VA  PF {power_factor}"
              f"  (last {reading.window_s:g} s)")
        print(f"            Q1 {reading.reactive_power_var:.1f} var (last fundamental window)  "
              f"{'-' if reading.frequency_hz is None else format(reading.frequency_hz, '.3f')} Hz  "
              f"Urms(1/2) {reading.voltage_half_cycle_v:.2f} V"
              + "".join(f"  {event.upper()}" for event in reading.voltage_events))
        print(f"            +A {reading.active_energy_import_wh} Wh  -A {reading.active_energy_export_wh} Wh"
              f"  ({reading.energy_pending_wh:+.3f} Wh not yet counted)")
        quadrants = " ".join(f"Q{number} {value}" for number, value
                             in zip(("I", "II", "III", "IV"), reading.reactive_energy_quadrants_varh))
        print(f"            +R {reading.reactive_energy_import_varh} varh  -R "
              f"{reading.reactive_energy_export_varh} varh  ({quadrants}; "
              f"{reading.reactive_pending_varh:+.3f} varh not yet counted)")
    if totals is not None:
        neutral = ("" if totals.neutral_current_rms_a is None
                   else f"  neutral {totals.neutral_current_rms_a:.3f} A")
        print(f"  total:    {totals.active_power_w:.1f} W  Q1 {totals.reactive_power_var:.1f} var"
              f"{neutral}")
        print(f"            +A {totals.active_energy_import_wh} Wh  -A {totals.active_energy_export_wh} Wh"
              f"  +R {totals.reactive_energy_import_varh} varh  -R "
              f"{totals.reactive_energy_export_varh} varh  (held back {totals.active_held_back_wh:+d} "
              f"Wh, {totals.reactive_held_back_varh:+d} varh)")
    for name, value in values.items():
        note = f"   ({notes[name]})" if name in notes else ""
        print(f"  {name:<28} {_show(name, value)}{note}")
    return EXIT_OK


def _parse_value(text: str) -> "int | Mapping[str, int]":
    try:
        if "=" in text:
            return {name.strip(): int(number, 0)
                    for name, number in (pair.split("=", 1) for pair in text.split(","))}
        return int(text, 0)
    except ValueError:
        raise ValueError(f"cannot read {text!r} as a number or FIELD=NUMBER list") from None


def _cmd_write(args: argparse.Namespace) -> int:
    value = _parse_value(args.value)
    with _open_meter(args) as meter:
        meter.write(args.register, value)
        if meter.register_map[args.register].access.readable:
            _say(f"{args.register} = {_show(args.register, meter.read(args.register))}")
    return EXIT_OK


def _profile_progress(done: int, total: int) -> None:
    # A progress line only where someone watches it: a large ring takes minutes at 115200 baud.
    if sys.stderr.isatty() and logger.isEnabledFor(logging.INFO):
        print(f"\rreading the load profile: {done}/{total} records", end="\n" if done == total else "",
              file=sys.stderr, flush=True)


def _profile_flags(record: ProfileRecord) -> str:
    return ",".join(flag for flag in ("power_up", "clock_set", "interval_changed")
                    if getattr(record, flag)) or "-"


def _cmd_profile(args: argparse.Namespace) -> int:
    with _open_meter(args) as meter:
        records = read_profile(meter, progress=_profile_progress)
    if args.json:
        print(json.dumps({"url": args.url, "records": [record.to_json() for record in records]},
                         indent=2))
        return EXIT_OK
    if args.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for record in records:
            writer.writerow({name: int(value) if isinstance(value, bool) else
                             "" if value is None else value
                             for name, value in record.to_json().items()})
        return EXIT_OK
    print(f"meter at {args.url}: {len(records)} load-profile records, oldest first")
    print(f"  {'number':>10}  {'start (UTC)':<25}  {'end (UTC)':<25}  {'+A Wh':>10}  {'-A Wh':>10}  flags")
    for record in records:
        start = "-" if record.start is None else record.start.isoformat()
        print(f"  {record.number:>10}  {start:<25}  {record.end.isoformat():<25}  "
              f"{record.active_import_wh:>10}  {record.active_export_wh:>10}  {_profile_flags(record)}")
    return EXIT_OK


def _cmd_events(args: argparse.Namespace) -> int:
    with _open_meter(args) as meter:
        events = read_events(meter)
    if args.json:
        print(json.dumps({"url": args.url, "events": [event.to_json() for event in events]},
                         indent=2))
        return EXIT_OK
    print(f"meter at {args.url}: {len(events)} voltage event edges, oldest first")
    for event in events:
        extreme = "lowest" if event.kind != "swell" else "highest"
        print(f"  {event.number:>10}  {event.time.isoformat(timespec='milliseconds')}  "
              f"{event.phase}  {event.kind:<12} {'end' if event.end else 'start':<5}  "
              f"{extreme} {event.extreme_voltage_v:.2f} V")
    return EXIT_OK


def _cmd_calibrate(args: argparse.Namespace) -> int:
    keys = KeySet.load(args.keys)
    with _open_meter(args) as meter:
        _say(f"measuring {args.windows} windows of the reference load ...")
        result = calibrate_gain(meter, keys, voltage_v=args.voltage, current_a=args.current,
                                phase=args.phase, windows=args.windows)
        print(f"phase {result.phase}: measured {result.measured_voltage_v:.4f} V, "
              f"{result.measured_current_a:.5f} A; reference {args.voltage:g} V, {args.current:g} A")
        changes = dict(result.registers)
        if args.phase_angle is not None:
            _say("measuring the angle of the reference load ...")
            angle = calibrate_phase_angle(meter, keys, angle_deg=args.phase_angle,
                                          frequency_hz=args.frequency, phase=args.phase,
                                          windows=args.windows)
            print(f"phase {angle.phase}: measured {angle.measured_angle_deg:.3f} degrees; "
                  f"reference {args.phase_angle:g}")
            changes.update(angle.registers)
    for name, (old, new) in changes.items():
        print(f"  {name:<22} {old:>20} -> {new}")
    return EXIT_OK


def _cmd_keys(args: argparse.Namespace) -> int:
    with _open_meter(args) as meter:
        identity = meter.identity()
        if args.action == "provision":
            path = args.keys or Path(f"keys-{identity.eui64}.json")
            if path.exists():
                raise ValueError(f"{path} exists: provisioning makes new keys and never "
                                 f"overwrites a key file; name another with --keys")
            keys = KeySet.generate(identity.meter_id)
            provision(meter, keys)
            keys.save(path)
            print(f"meter {identity.eui64}: {len(keys.keys)} key slots provisioned; keys in {path}")
        elif args.action == "zeroise":
            zeroise(meter)
            print(f"meter {identity.eui64}: every key slot erased")
        status = meter.read("security_status")
        counters = {authority: int(meter.read(f"invocation_counter_{authority.slot_name}"))
                    for authority in Authority}
    if args.action == "status":
        print(f"meter {identity.eui64}: last result {SecurityResult(status['result']).name}, "
              f"{status['commands_accepted']} commands accepted, "
              f"{status['commands_refused']} refused")
        for authority, counter in counters.items():
            held = "key" if status["provisioned"] >> authority & 1 else "empty"
            print(f"  {authority.slot_name:<9} {held:<6} last invocation counter {counter}")
    return EXIT_OK


def _cmd_set_clock(args: argparse.Namespace) -> int:
    if args.utc is None:
        when = datetime.datetime.now(datetime.timezone.utc)
    else:
        when = datetime.datetime.fromisoformat(args.utc)
        if when.tzinfo is None:
            raise ValueError(f"--utc {args.utc} has no time zone: add Z or +00:00")
    keys = KeySet.load(args.keys)
    with _open_meter(args) as meter:
        counter = send_command(meter, keys, Authority[args.authority.upper()], "utc_set",
                               int(when.timestamp()))
        print(f"meter clock set to {meter.utc_time().isoformat(timespec='seconds')} "
              f"({args.authority} command, invocation counter {counter})")
    return EXIT_OK


def _cmd_seal(args: argparse.Namespace) -> int:
    keys = KeySet.load(args.keys)
    with _open_meter(args) as meter:
        if args.snapshot:
            reading = seal_reading(meter, SealKind.SNAPSHOT)
            shown: dict = reading.snapshot
        else:
            meter.write("profile_select", args.profile)
            reading = seal_reading(meter, SealKind.PROFILE_RECORD)
            record = meter.register_map["profile_record"]
            shown = dict(decode(record, reading.data[-record.size:]))
    reading.verify(keys.key(Authority.READING))
    if args.json:
        print(json.dumps({"kind": reading.kind.name.lower(), "data": reading.data.hex(),
                          "counter": reading.counter, "tag": reading.tag.hex(),
                          "verified": True, **shown}, indent=2))
        return EXIT_OK
    print(f"sealed {reading.kind.name.lower()} (seal counter {reading.counter}, tag "
          f"{reading.tag.hex()}), verified with the reading key:")
    for name, value in shown.items():
        print(f"  {name:<22} {value}")
    return EXIT_OK


#: `refmeter switch` requests and the interlock action each sends.
_SWITCH_REQUESTS = {"disconnect": Action.REMOTE_DISCONNECT, "arm": Action.REMOTE_RECONNECT,
                    "local-disconnect": Action.LOCAL_DISCONNECT, "aux-off": Action.AUX_OFF,
                    "aux-reduce": Action.AUX_REDUCE, "aux-restore": Action.AUX_RESTORE}


def _cmd_switch(args: argparse.Namespace) -> int:
    with _open_meter(args) as meter:
        if args.action == "status":
            status = read_switch_status(meter)
            if args.json:
                print(json.dumps({"url": args.url, **status.to_json()}, indent=2))
            else:
                print(f"meter at {args.url}: {status.state.name.lower()}"
                      + (", isolated" if status.isolated else ""))
                for name, value in status.to_json().items():
                    print(f"  {name:<22} {value}")
            return EXIT_OK
        if args.action == "log":
            records = read_interlock_events(meter)
            if args.json:
                print(json.dumps({"url": args.url,
                                  "events": [record.to_json() for record in records]}, indent=2))
            else:
                print(f"meter at {args.url}: {len(records)} interlock events, oldest first")
                for record in records:
                    print(f"  {record.number:>10}  {record.time.isoformat()}  {record.describe()}")
            return EXIT_OK
        if args.keys is None:
            raise ValueError(f"`switch {args.action}` sends an authenticated command: give --keys")
        action = _SWITCH_REQUESTS[args.action]
        default = "local" if action is Action.LOCAL_DISCONNECT else "supplier"
        authority = Authority[(args.authority or default).upper()]
        record = request_switch(meter, KeySet.load(args.keys), authority, action,
                                request_id=args.request_id)
    if args.json:
        print(json.dumps(record.to_json(), indent=2))
    else:
        print(record.describe())
    # The first of two sources is a step, not a refusal.
    carried_on = record.accepted or record.reason is Reason.AWAITING_SECOND_SOURCE
    return EXIT_OK if carried_on else EXIT_REFUSED


def _cmd_regs(args: argparse.Namespace) -> int:
    registers = register_map(args.phases)
    if args.json:
        print(json.dumps({"phases": args.phases, "fingerprint": registers.fingerprint(),
                          "registers": registers.describe()}, indent=2))
    elif args.markdown:
        print(registers_markdown(args.phases), end="")
    else:
        for address, register in registers:
            print(f"{address:#06x}  {register.name:<20} {register.access.value}  "
                  f"{register.size} B  {register.description}")
    return EXIT_OK


def _cmd_sim(args: argparse.Namespace) -> int:
    from refmeter.sim.server import CoSimServer

    simulator, meter = _start_simulation(args)
    try:
        server = CoSimServer(meter, host=args.host, port=args.port)
    except OSError as error:
        meter.close()
        raise LinkError(f"cannot listen on {args.host}:{args.port}: {error}") from error
    try:
        if args.json:
            print(json.dumps({"url": server.url, "simulator": simulator}), flush=True)
        else:
            print(f"refmeter sim: {simulator} simulation of the meter, UART on {server.url}; "
                  f"Ctrl-C stops", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        _say("refmeter sim: stopped")
    finally:
        server.close()
        meter.close()
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from refmeter.sim.server import CoSimServer

    simulator, simulation = _start_simulation(args)
    print(f"Started a simulated meter ({simulator}) and its co-simulation server")
    server = CoSimServer(simulation, port=0)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        print(f"Reading it through {server.url}, with the code that reads a board:")
        with Meter(SerialTransport(server.url), timeout=args.timeout, tries=args.tries) as meter:
            identity = meter.check_register_map()
            print(f"  meter id          {identity.eui64}")
            print(f"  gateware          {identity.version}, build {identity.build_hash:08x}, "
                  f"register map {identity.register_map_hash:08x} (matches this host)")
            print(f"  meter clock (UTC) {meter.utc_time().isoformat(timespec='milliseconds')}")
            meter.write("scratch", 0xC0FFEE)
            print(f"  scratch           wrote 0xc0ffee, read back {meter.read('scratch'):#x}")
            status = meter.link_status()
            print(f"  link errors       {status.rejected_frames} rejected frames, "
                  f"{status.framing_errors} framing errors, {status.overruns} overruns")
            _demo_measurement(meter, simulator, _simulated_load(args))
    finally:
        server.stop()
        serving.join()
        server.close()
        simulation.close()
    print("Done. Next: `refmeter sim --port 7700` and `refmeter --url socket://127.0.0.1:7700 read`.")
    return EXIT_OK


def _demo_measurement(meter: Meter, simulator: str, load) -> None:
    """Wait for the meter's first measurement window and set it beside the load."""
    if simulator != "verilator":
        print("  measurement       the Amaranth simulator needs minutes per 1 s window: "
              "see it with --simulator verilator")
        return
    deadline = time.monotonic() + 60
    while meter.read("windows_completed") == 0:
        if time.monotonic() > deadline:
            raise MeterError("the simulated meter published no measurement window in 60 s")
        time.sleep(0.2)
    reading = read_phase(meter, phases(meter)[0])
    load = load[0] if isinstance(load, tuple) else load   # phase l1's
    expected = load.voltage_rms * load.current_rms * math.cos(math.radians(load.phase_deg))
    print(f"  simulated load    {load.voltage_rms:g} V, {load.current_rms:g} A, "
          f"{load.phase_deg:g} deg: {expected:.1f} W")
    print(f"  meter measured    {reading.voltage_rms_v:.2f} V, {reading.current_rms_a:.4f} A, "
          f"{reading.active_power_w:.1f} W over {reading.window_s:g} s "
          f"(uncalibrated, nominal front end)")


def _cmd_build(args: argparse.Namespace) -> int:
    from refmeter.boards import BOARDS
    from refmeter.boards.build import BuildError, build, report_table

    board = BOARDS[args.board]
    build_dir = args.build_dir or Path("build") / board.name
    _say(f"building the meter for {board.title} in {build_dir}")
    try:
        report = build(board, build_dir, baud=args.baud, progress=_say)
    except BuildError as error:
        raise _ToolchainError(str(error)) from error
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(report_table([report]))
    return EXIT_OK


def _cmd_program(args: argparse.Namespace) -> int:
    from refmeter.boards import BOARDS
    from refmeter.boards.build import DESIGN_NAME
    from refmeter.boards.program import ProgramError, program

    board = BOARDS[args.board]
    bitstream = args.bitstream or Path("build") / board.name / f"{DESIGN_NAME}.{board.bitstream_suffix}"
    try:
        output = program(board, bitstream, flash=args.flash)
    except ProgramError as error:
        raise _ToolchainError(str(error)) from error
    logger.debug("%s", output)
    _say(f"programmed {board.title} with {bitstream}" + (" (flash)" if args.flash else ""))
    return EXIT_OK



def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: "list[str] | None" = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else
                        logging.WARNING if args.quiet else logging.INFO,
                        format="%(message)s", stream=sys.stderr, force=True)
    # A service manager's SIGTERM stops `refmeter sim` as cleanly as Ctrl-C.
    previous_handler = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return args.run(args)
    except LinkError as error:
        logger.error("error: %s", error)
        return EXIT_LINK
    except MeterError as error:
        logger.error("error: %s", error)
        return EXIT_REFUSED
    except (ValueError, KeyError) as error:  # a register name or value the map refuses
        logger.error("error: %s", error.args[0] if isinstance(error, KeyError) else error)
        return EXIT_USAGE
    except _ToolchainError as error:
        logger.error("error: %s", error)
        return EXIT_TOOLCHAIN
    except KeyboardInterrupt:
        logger.error("interrupted")
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
