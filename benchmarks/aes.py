"""AES-128, GHASH and AES-GCM benchmark: size and speed of each configuration on iCE40 and ECP5.

Builds for the iCE40 UP5K (iCEBreaker) and the ECP5 (ULX3S) with the YoWASP tools:

    python benchmarks/aes.py                          # every configuration, both boards
    python benchmarks/aes.py --boards icebreaker      # one board
    python benchmarks/aes.py --configs column-ram round-ram-10-x3 --jobs 2
    python benchmarks/aes.py --configs ghash-4 gcm-small gcm-fast --jobs 1
    python benchmarks/aes.py --configs gcm-serial --jobs 2
    python benchmarks/aes.py --list                   # the configuration names

Each engine is built inside :class:`SerialHarness`, a shift-register loader and
unloader on four pins (data in, shift, data out, and a "waiting" LED), so its
256- or 257-bit request and 128-bit response need no pins of their own. The
``wrapper`` row is the harness around a pass-through stand-in (response = block ^
key, so that no request bit is optimised away): what the harness itself costs. The
"engine" columns subtract it. GHASH and AES-GCM, whose ports are not one request
and one response, sit in small adapters (:class:`GhashAdapter`, :class:`GcmAdapter`,
:class:`SerialGcmAdapter`) that the engine columns count.

Cycles per block are the engine's (:func:`refmeter.gateware.aes.cycles_per_block`,
:func:`~refmeter.gateware.aes.ghash_cycles_per_block`, and for AES-GCM the payload
figure of :func:`~refmeter.gateware.aes.gcm_cycles_per_block`, and for the serial
AES-GCM what one more payload block adds to a message by
:func:`~refmeter.gateware.aes.serial_gcm_cycles`, all checked in simulation by
tests/test_aes.py, tests/test_gcm.py and tests/test_serial_gcm.py): blocks back to
back.
Throughput is 128 bits x Fmax / cycles per block, Fmax is nextpnr's for the
board's own clock constraint (12 MHz iCEBreaker, 25 MHz ULX3S), one seed.
Figures go in docs/performance.md with the command that produced them.
"""

import argparse
import json
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from amaranth.hdl import Cat, Elaboratable, Module, Mux, Signal
from amaranth.lib import io, stream, wiring
from amaranth.lib.wiring import In, Out

from refmeter.boards import BOARDS
from refmeter.boards.build import BuildReport, build_elaboratable
from refmeter.gateware.aes import (AesGcm, Aes128, Ghash, SerialAesGcm, cycles_per_block,
                                   gcm_cycles_per_block, ghash_cycles_per_block, request_layout,
                                   serial_gcm_cycles)


@dataclass(frozen=True)
class Configuration:
    """One engine to measure: a name for the command line and the table, what it is
    (``"aes"``, ``"ghash"``, ``"gcm"``, ``"gcm-serial"``, or ``"wrapper"`` for the harness
    alone) and its keyword arguments."""

    name: str
    kind: str
    parameters: dict
    description: str

    def engine(self):
        """The engine, with a request stream of :func:`request_layout` and a response
        stream of 128 bits."""
        return {"wrapper": PassThrough, "aes": Aes128, "ghash": GhashAdapter,
                "gcm": GcmAdapter, "gcm-serial": SerialGcmAdapter}[self.kind](**self.parameters)

    @property
    def cycles(self) -> "int | None":
        """Cycles per block, back to back (None for the harness alone)."""
        p = self.parameters
        if self.kind == "aes":
            return cycles_per_block(datapath=p["datapath"], decrypt=p.get("decrypt", False),
                                    interleave=p.get("interleave", 1))
        if self.kind == "ghash":
            return ghash_cycles_per_block(p["digit"])
        if self.kind == "gcm":
            return gcm_cycles_per_block(datapath=p.get("datapath", "column"),
                                        interleave=p.get("interleave", 1),
                                        digit=p["digit"])["payload"]
        if self.kind == "gcm-serial":
            tag_bytes = p.get("tag_bytes", 16)
            return (serial_gcm_cycles(aad_bytes=0, payload_bytes=32, tag_bytes=tag_bytes)
                    - serial_gcm_cycles(aad_bytes=0, payload_bytes=16, tag_bytes=tag_bytes))
        return None


def _aes(name: str, description: str, **parameters) -> Configuration:
    return Configuration(name, "aes", parameters, description)


CONFIGURATIONS = [
    Configuration("wrapper", "wrapper", {}, "the serial harness around a pass-through stand-in"),
    _aes("column-ram", "32-bit datapath, 4 S-boxes in RAM shared with the key schedule",
         datapath="column", sbox="ram"),
    _aes("column-logic", "32-bit datapath, 4 logic S-boxes", datapath="column", sbox="logic"),
    _aes("column-ram-decrypt", "column-ram with the inverse cipher", datapath="column",
         sbox="ram", decrypt=True),
    _aes("round-ram", "a round per cycle, 20 S-boxes in RAM", datapath="round", sbox="ram"),
    _aes("round-ram-10-x2", "a round per cycle, 10 S-boxes in RAM and 10 in logic, "
         "2 blocks in flight", datapath="round", sbox="ram", max_ram_blocks=10, interleave=2),
    _aes("round-ram-10-x3", "a round per cycle, 10 S-boxes in RAM and 10 in logic, "
         "3 blocks in flight", datapath="round", sbox="ram", max_ram_blocks=10, interleave=3),
    _aes("round-logic", "a round per cycle, 20 logic S-boxes", datapath="round", sbox="logic"),
    _aes("round-logic-x3", "a round per cycle, 20 logic S-boxes, 3 blocks in flight",
         datapath="round", sbox="logic", interleave=3),
    _aes("round-ram-10-x3-decrypt", "round-ram-10-x3 with the inverse cipher",
         datapath="round", sbox="ram", max_ram_blocks=10, interleave=3, decrypt=True),
    Configuration("ghash-1", "ghash", dict(digit=1), "GHASH, 1 bit of H a cycle"),
    Configuration("ghash-4", "ghash", dict(digit=4), "GHASH, 4 bits of H a cycle"),
    Configuration("ghash-16", "ghash", dict(digit=16), "GHASH, 16 bits of H a cycle"),
    Configuration("gcm-small", "gcm", dict(datapath="column", sbox="ram", digit=4),
                  "AES-GCM: column-ram with GHASH digit 4 (keeps pace)"),
    Configuration("gcm-smallest", "gcm", dict(datapath="column", sbox="ram", digit=1),
                  "AES-GCM: column-ram with GHASH digit 1"),
    Configuration("gcm-fast", "gcm", dict(datapath="round", sbox="ram", max_ram_blocks=10,
                                          interleave=2, digit=16),
                  "AES-GCM: round-ram-10-x2 with GHASH digit 16 (keeps pace)"),
    Configuration("gcm-serial", "gcm-serial", dict(tag_bytes=12),
                  "AES-GCM a byte at a time, working values in block RAM (the meter's)"),
]


def _engine_ports() -> dict:
    """What :class:`SerialHarness` drives: a request of a key and a block, and 128-bit
    responses."""
    return {"request": In(stream.Signature(request_layout(decrypt=False))),
            "response": Out(stream.Signature(128))}


class PassThrough(wiring.Component):
    """Stands in for the engine when measuring the harness: answers each request at
    once with block ^ key."""

    def __init__(self):
        super().__init__(_engine_ports())

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [
            self.response.payload.eq(self.request.payload.block ^ self.request.payload.key),
            self.response.valid.eq(self.request.valid),
            self.request.ready.eq(self.response.ready),
        ]
        return m


class GhashAdapter(wiring.Component):
    """:class:`Ghash` behind a request/response pair: each request loads ``key`` as H
    and hashes ``block``; the response is Y = block . H."""

    def __init__(self, *, digit: int):
        self._digit = digit
        super().__init__(_engine_ports())

    def elaborate(self, platform):
        m = Module()
        m.submodules.ghash = ghash = Ghash(digit=self._digit)
        keyed = Signal()            # H of this request is loaded
        hashed = Signal()           # its block is being (or has been) multiplied
        m.d.comb += [
            ghash.hash_key.payload.eq(self.request.payload.key),
            ghash.hash_key.valid.eq(self.request.valid & ~keyed),
            ghash.block.payload.data.eq(self.request.payload.block),
            ghash.block.valid.eq(self.request.valid & keyed & ~hashed),
            self.response.payload.eq(ghash.y),
            self.response.valid.eq(hashed & ~ghash.busy),
            self.request.ready.eq(self.response.valid & self.response.ready),
        ]
        with m.If(ghash.hash_key.valid & ghash.hash_key.ready):
            m.d.sync += keyed.eq(1)
        with m.If(ghash.block.valid & ghash.block.ready):
            m.d.sync += hashed.eq(1)
        with m.If(self.request.ready):
            m.d.sync += [keyed.eq(0), hashed.eq(0)]
        return m


class GcmAdapter(wiring.Component):
    """:class:`AesGcm` behind a request/response pair, every input bit used: the
    request's key is the key, its block is every element and (sliced) the header
    (IV from bits 32-127, AAD and payload lengths from bits 0-31, ``decrypt``,
    ``verify`` and ``last`` from key bits 0-2); the request is taken when its
    message ends. The responses are the output blocks, then the tag (xor the
    result's flags)."""

    def __init__(self, **parameters):
        self._parameters = parameters
        super().__init__(_engine_ports())

    def elaborate(self, platform):
        m = Module()
        m.submodules.gcm = gcm = AesGcm(**self._parameters)
        block, key = self.request.payload.block, self.request.payload.key
        result = gcm.result.payload
        m.d.comb += [
            gcm.key.eq(key),
            gcm.message.payload.eq(Cat(block[32:], block[:32], key[:2])),
            gcm.message.valid.eq(self.request.valid),
            gcm.data.payload.eq(Cat(block, key[2])),
            gcm.data.valid.eq(self.request.valid),
            self.request.ready.eq(gcm.message.ready),
            self.response.valid.eq(gcm.output.valid | gcm.result.valid),
            self.response.payload.eq(Mux(gcm.output.valid, gcm.output.payload,
                                         result.tag ^ Cat(result.tag_ok, result.malformed))),
            gcm.output.ready.eq(self.response.ready),
            gcm.result.ready.eq(self.response.ready),
        ]
        return m


class SerialGcmAdapter(wiring.Component):
    """:class:`SerialAesGcm` behind a request/response pair with wires only, so that the
    engine columns count the engine: the header is the low bits of the request's
    block, the request is taken with it, and the key port's data and the data
    stream are the request register's top bytes (bits 120-127 of block and key),
    which every other bit of the harness's shift register feeds. Each output byte
    and then ``tag_ok`` come out as responses, in the low bits. The bytes are no
    meaningful message: the build measures size and speed, not function."""

    def __init__(self, **parameters):
        self._parameters = parameters
        super().__init__(_engine_ports())

    def elaborate(self, platform):
        m = Module()
        m.submodules.gcm = gcm = SerialAesGcm(**self._parameters)
        block, key = self.request.payload.block, self.request.payload.key
        m.d.comb += [
            gcm.key.data.eq(block[120:]),
            gcm.message.payload.eq(block),
            gcm.message.valid.eq(self.request.valid),
            self.request.ready.eq(gcm.message.ready),
            gcm.data.payload.eq(key[120:]),
            gcm.data.valid.eq(1),
            self.response.valid.eq(gcm.output.valid | gcm.result.valid),
            self.response.payload.eq(Mux(gcm.output.valid, gcm.output.payload,
                                         gcm.result.payload.tag_ok)),
            gcm.output.ready.eq(self.response.ready),
            gcm.result.ready.eq(self.response.ready),
        ]
        return m


class SerialHarness(wiring.Component):
    """Loads an engine's request from ``data_in`` and unloads its response on
    ``data_out``, one bit per cycle while ``shift`` is high.

    Bits shift into the request register (payload bit 0 last); when ``shift``
    falls, the request is offered until the engine takes it, and the register does
    not shift meanwhile. The engine's response is taken as soon as it is offered
    into the response register, whose top bit is ``data_out`` and which shifts
    left while ``shift`` is high. ``waiting`` is high while a request is offered.
    """

    data_in: In(1)
    shift: In(1)
    data_out: Out(1)
    waiting: Out(1)

    def __init__(self, engine):
        self._engine = engine
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = engine = self._engine
        request = engine.request
        # Datapath registers without reset, so that their enables cost nothing: an
        # iCE40 flip-flop with enable only resets while enabled.
        request_bits = Signal(len(request.payload.as_value()), reset_less=True)
        response_bits = Signal(128, reset_less=True)
        shifted = Signal()

        m.d.sync += shifted.eq(self.shift)
        with m.If(self.shift & ~request.valid):
            m.d.sync += request_bits.eq(Cat(self.data_in, request_bits[:-1]))
        with m.If(request.ready):
            m.d.sync += request.valid.eq(0)
        with m.If(shifted & ~self.shift):
            m.d.sync += request.valid.eq(1)
        m.d.comb += [request.payload.eq(request_bits), self.waiting.eq(request.valid)]

        m.d.comb += engine.response.ready.eq(1)
        with m.If(engine.response.valid):
            m.d.sync += response_bits.eq(engine.response.payload)
        with m.Elif(self.shift):
            m.d.sync += response_bits.eq(Cat(0, response_bits[:-1]))
        m.d.comb += self.data_out.eq(response_bits[-1])
        return m


class BoardHarness(Elaboratable):
    """:class:`SerialHarness` on a board: data in on the UART's RX pin, shift on the
    first button, data out on the UART's TX pin, ``waiting`` on the first LED."""

    def __init__(self, configuration: Configuration):
        self._configuration = configuration

    def elaborate(self, platform):
        m = Module()
        m.submodules.harness = harness = SerialHarness(self._configuration.engine())
        uart = platform.request("uart", 0, dir="-")
        button = platform.request("button", 0, dir="-")
        led = platform.request("led", 0, dir="-")
        m.submodules.data_in = data_in = io.Buffer("i", uart.rx)
        m.submodules.shift = shift = io.Buffer("i", button)
        m.submodules.data_out = data_out = io.Buffer("o", uart.tx)
        m.submodules.waiting = waiting = io.Buffer("o", led)
        m.d.comb += [
            harness.data_in.eq(data_in.i),
            harness.shift.eq(shift.i),
            data_out.o.eq(harness.data_out),
            waiting.o.eq(harness.waiting),
        ]
        return m


@dataclass(frozen=True)
class Row:
    """One build's result, with the engine's cycles per block (None for the harness)."""

    configuration: Configuration
    report: BuildReport
    cycles: "int | None"

    @property
    def mbit_s(self) -> "float | None":
        if self.cycles is None:
            return None
        return 128 * self.report.fmax_mhz / self.cycles


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join("  ".join(cell.rjust(width) if index else cell.ljust(width)
                               for index, (cell, width) in enumerate(zip(row, widths))).rstrip()
                     for row in rows)


def table(results: list[Row]) -> str:
    """The benchmark table; the engine columns subtract the harness of the same board."""
    wrapper = {row.report.board: row.report.luts for row in results
               if row.configuration.kind == "wrapper"}
    lines = [("configuration", "board", "cycles/block", "LCs/LUTs", "FFs", "RAM blocks",
              "Fmax MHz", "Mbit/s", "Mbit/s per kLC", "engine LCs", "engine Mbit/s per kLC")]
    for row in results:
        report = row.report
        if row.cycles is None:
            lines.append((row.configuration.name, report.board, "-", str(report.luts),
                          str(report.flip_flops), str(report.ram_blocks),
                          f"{report.fmax_mhz:.1f}", "-", "-", "-", "-"))
            continue
        engine = report.luts - wrapper[report.board] if report.board in wrapper else None
        lines.append((
            row.configuration.name, report.board, str(row.cycles), str(report.luts),
            str(report.flip_flops), str(report.ram_blocks), f"{report.fmax_mhz:.1f}",
            f"{row.mbit_s:.0f}", f"{1000 * row.mbit_s / report.luts:.1f}",
            "-" if engine is None else str(engine),
            "-" if engine is None else f"{1000 * row.mbit_s / engine:.1f}",
        ))
    return _table(lines)


def run(configuration: Configuration, board_name: str, build_root: Path,
        progress) -> Row:
    """Build one configuration in its harness for one board and report it."""
    board = BOARDS[board_name]
    build_dir = build_root / f"{configuration.name}-{board_name}"
    report = build_elaboratable(board, BoardHarness(configuration), build_dir, name="aes_bench",
                                progress=lambda message: progress(
                                    f"{configuration.name} on {board_name}: {message}"))
    return Row(configuration, report, configuration.cycles)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _run_job(job) -> Row:
    configuration, board, build_root, quiet = job
    return run(configuration, board, build_root, (lambda message: None) if quiet else _progress)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [configuration.name for configuration in CONFIGURATIONS]
    parser.add_argument("--configs", nargs="+", choices=names, default=names, metavar="NAME",
                        help="configurations to build (default: all; see --list)")
    parser.add_argument("--boards", nargs="+", choices=sorted(BOARDS),
                        default=["icebreaker", "ulx3s"], help="boards (default: both)")
    parser.add_argument("--jobs", type=int, default=1, help="builds run in parallel (default 1)")
    parser.add_argument("--build-dir", type=Path,
                        help="keep the builds here (default: a temporary directory)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--list", action="store_true", help="list the configurations and exit")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    args = parser.parse_args()

    if args.list:
        for configuration in CONFIGURATIONS:
            print(f"{configuration.name:26} {configuration.description}")
        return
    if "wrapper" not in args.configs:
        args.configs = ["wrapper", *args.configs]   # the engine-only columns need it

    selected = [c for c in CONFIGURATIONS if c.name in args.configs]
    jobs = [(configuration, board) for board in args.boards for configuration in selected]
    with tempfile.TemporaryDirectory() as temporary:
        build_root = args.build_dir or Path(temporary)
        # Processes, not threads: preparing a build plan is not thread-safe.
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(_run_job, [(*job, build_root, args.quiet) for job in jobs]))

    if args.json:
        print(json.dumps([{"configuration": row.configuration.name,
                           "parameters": row.configuration.parameters,
                           "cycles_per_block": row.cycles, "mbit_s": row.mbit_s,
                           **row.report.to_json()} for row in results], indent=2))
        return
    print("AES-128 engines (encryption), GHASH and AES-GCM (payload blocks) in a serial "
          "harness\n(Mbit/s = 128 x Fmax / cycles per block; per kLC: per 1000 LCs (iCE40) or "
          "LUTs (ECP5),\nwith the harness and without it):")
    print(table(results))


if __name__ == "__main__":
    main()
