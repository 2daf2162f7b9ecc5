"""cocotb bench for the whole :class:`~refmeter.gateware.meter.Meter` top, through its pins.

The bench talks to the generated Verilog only through ``uart_rx`` and ``uart_tx``
(and watches ``heartbeat``), with a bit-level 8N1 UART model of its own written
here, so a bug shared by the gateware UART and a model built from it cannot hide.
Requests are encoded and responses checked by the host package
(:mod:`refmeter.soft.link`), so the bench also checks that host and gateware agree
on the frame format.

The DUT parameters come from the environment, set by the pytest side
(``tests/test_cocotb_meter.py``) from the values it built the Verilog with:

``REFMETER_CLK_FREQ``
    System clock, Hz.
``REFMETER_BAUD``
    Host-link UART rate, bits/s.
``REFMETER_METER_ID``
    EUI-64 the meter was built with (any base ``int()`` accepts with prefix).
``REFMETER_BUILD_HASH``
    32-bit build hash the meter was built with.
"""

import os
from dataclasses import dataclass

import cocotb
from cocotb.clock import Clock
from cocotb.queue import Queue
from cocotb.simtime import get_sim_time
from cocotb.triggers import (
    FallingEdge, First, RisingEdge, SimTimeoutError, Timer, with_timeout)

from refmeter.gateware.hostlink.protocol import (
    CRC_SIZE, MAX_PAYLOAD, RESPONSE_HEADER_SIZE, SOF, Command, Status)
from refmeter.gateware.meter import gateware_version, meter_register_map
from refmeter.soft.link import Response, crc16, encode_request
from refmeter.soft.registers import decode, encode

REGISTERS = meter_register_map()


@dataclass(frozen=True)
class BuildParameters:
    """What the pytest side built the DUT with."""

    clk_freq: int   #: Hz
    baud: int       #: bits/s
    meter_id: int   #: EUI-64
    build_hash: int

    @classmethod
    def from_environment(cls) -> "BuildParameters":
        def number(name: str) -> int:
            try:
                return int(os.environ[name], 0)
            except KeyError:
                raise RuntimeError(f"{name} is not set: run this bench through "
                                   f"tests/test_cocotb_meter.py") from None
        return cls(clk_freq=number("REFMETER_CLK_FREQ"), baud=number("REFMETER_BAUD"),
                   meter_id=number("REFMETER_METER_ID"),
                   build_hash=number("REFMETER_BUILD_HASH"))


class UartSource:
    """Drives 8N1 bytes onto a serial input, bit by bit.

    Parameters
    ----------
    signal :
        The DUT input to drive (idle high).
    bit_time_ps : int
        Bit time, ps.
    """

    def __init__(self, signal, bit_time_ps: int):
        self._signal = signal
        self._bit_time_ps = bit_time_ps
        signal.value = 1

    async def write(self, data: bytes) -> None:
        """Send ``data`` back to back (one stop bit, no idle time between bytes)."""
        for byte in data:
            bits = [0] + [(byte >> index) & 1 for index in range(8)] + [1]
            for bit in bits:
                self._signal.value = bit
                await Timer(self._bit_time_ps, "ps")


class UartSink:
    """Receives 8N1 bytes from a serial output, sampling each bit at its centre.

    A background task waits for the falling edge of a start bit, checks the start
    bit at its centre, samples eight data bits a bit time apart and checks the stop
    bit; good bytes go to a queue, a framing error is recorded and fails the test
    when the bench asks for a byte.
    """

    def __init__(self, signal, bit_time_ps: int):
        self._signal = signal
        self._bit_time_ps = bit_time_ps
        self._queue: Queue[int] = Queue()
        self.framing_errors = 0
        self._task = cocotb.start_soon(self._run())

    async def _run(self) -> None:
        half_bit = self._bit_time_ps // 2
        while True:
            await FallingEdge(self._signal)
            await Timer(half_bit, "ps")
            if self._signal.value != 0:  # a glitch, not a start bit
                continue
            byte = 0
            for index in range(8):
                await Timer(self._bit_time_ps, "ps")
                byte |= int(self._signal.value) << index
            await Timer(self._bit_time_ps, "ps")
            if self._signal.value != 1:
                self.framing_errors += 1
                continue
            await self._queue.put(byte)

    def empty(self) -> bool:
        return self._queue.empty()

    async def read_byte(self, timeout_ps: int) -> int:
        """The next received byte; fails if none starts within ``timeout_ps``."""
        try:
            byte = await with_timeout(self._queue.get(), timeout_ps, "ps")
        except SimTimeoutError:
            raise AssertionError(f"no byte from the meter within {timeout_ps / 1e6:g} us") from None
        assert self.framing_errors == 0, "the meter sent a byte with a bad stop bit"
        return byte


class TB:
    """Owns the meter's clock, reset and UART models, and performs host requests."""

    def __init__(self, dut):
        self.dut = dut
        self.log = dut._log
        self.params = BuildParameters.from_environment()

        # Every input gets a value at time 0 (Amaranth's `always @*` blocks only
        # evaluate when an input changes).
        dut.rst.value = 0
        dut.uart_rx.value = 1

        # 12 MHz is 83 333.3 ps: round to the 1 ps precision; an odd period needs
        # an explicit high time.
        self.clk_period_ps = round(1e12 / self.params.clk_freq)
        self.clock = Clock(dut.clk, self.clk_period_ps, unit="ps", impl="gpi",
                           period_high=self.clk_period_ps // 2)
        self.clock.start()

        # The host's bit time is the nominal one, not the meter's divisor: the
        # meter has to cope with the difference, as with a real host.
        self.bit_time_ps = round(1e12 / self.params.baud)
        self.source = UartSource(dut.uart_rx, self.bit_time_ps)
        self.sink = UartSink(dut.uart_tx, self.bit_time_ps)

    async def reset(self) -> None:
        """Synchronous reset for a few cycles, then a bit time of idle line."""
        self.dut.rst.value = 1
        await Timer(4 * self.clk_period_ps, "ps")
        self.dut.rst.value = 0
        await Timer(self.bit_time_ps, "ps")

    async def send_frame(self, frame: bytes) -> None:
        assert self.sink.empty(), "bytes from the meter arrived unasked"
        await self.source.write(frame)

    async def receive_response(self) -> Response:
        """Read one response frame and check its layout and CRC."""
        byte_time = 10 * self.bit_time_ps
        # The first byte waits for the meter to act; later ones must follow at once.
        start = await self.sink.read_byte(timeout_ps=20 * byte_time)
        assert start == SOF, f"response starts with {start:#04x}, not SOF {SOF:#04x}"
        header = bytes([await self.sink.read_byte(2 * byte_time)
                        for _ in range(RESPONSE_HEADER_SIZE - 1)])
        length, command, status, address_high, address_low = header
        assert length <= MAX_PAYLOAD, f"response LEN {length} exceeds {MAX_PAYLOAD}"
        rest = bytes([await self.sink.read_byte(2 * byte_time)
                      for _ in range(length + CRC_SIZE)])
        payload, crc = rest[:length], int.from_bytes(rest[length:], "big")
        expected_crc = crc16(header + payload)
        assert crc == expected_crc, (f"response CRC {crc:#06x}, expected {expected_crc:#06x} "
                                     f"over {(header + payload).hex()}")
        return Response(command, Status(status), (address_high << 8) | address_low, payload)

    async def request(self, command: Command | int, address: int,
                      payload: bytes = b"") -> Response:
        """Send one request frame and return the meter's response to it."""
        await self.send_frame(encode_request(command, address, payload))
        response = await self.receive_response()
        assert (response.command, response.address) == (int(command), address), (
            f"response echoes command {response.command:#04x} address {response.address:#06x}, "
            f"request was {int(command):#04x} {address:#06x}")
        return response

    async def read(self, name: str):
        """Read register ``name``; its value decoded as the host decodes it."""
        register = REGISTERS[name]
        response = await self.request(Command.READ, REGISTERS.address_of(name))
        assert response.status is Status.OK, f"read of {name}: {response.status.name}"
        return decode(register, response.payload)

    async def write(self, name: str, value) -> Status:
        """Write register ``name``; return the status (the payload must be empty)."""
        response = await self.request(Command.WRITE, REGISTERS.address_of(name),
                                      encode(REGISTERS[name], value))
        assert response.payload == b"", f"write of {name} answered with a payload"
        return response.status


async def started(dut) -> TB:
    tb = TB(dut)
    await tb.reset()
    return tb


@cocotb.test()
async def identity_registers_read_back_as_built(dut):
    """meter_id, gateware_version, build_hash and register_map_hash are the built values."""
    tb = await started(dut)
    meter_id = await tb.read("meter_id")
    assert meter_id == tb.params.meter_id, (f"meter_id {meter_id:#018x}, "
                                            f"built {tb.params.meter_id:#018x}")
    version = await tb.read("gateware_version")
    assert (version["major"], version["minor"], version["patch"]) == gateware_version()
    build_hash = await tb.read("build_hash")
    assert build_hash == tb.params.build_hash, (f"build_hash {build_hash:#010x}, "
                                                f"built {tb.params.build_hash:#010x}")
    map_hash = await tb.read("register_map_hash")
    assert map_hash == REGISTERS.fingerprint(), (f"register_map_hash {map_hash:#010x}, "
                                                 f"host map {REGISTERS.fingerprint():#010x}")


@cocotb.test()
async def scratch_write_reads_back(dut):
    """A value written to scratch reads back; the reset value is 0."""
    tb = await started(dut)
    assert await tb.read("scratch") == REGISTERS["scratch"].init
    for value in (0xA5C3_0F96, 0xFFFF_FFFF, 0x0000_0001):
        assert await tb.write("scratch", value) is Status.OK
        assert await tb.read("scratch") == value


@cocotb.test()
async def bad_crc_is_refused_and_changes_nothing(dut):
    """A write frame with a corrupted CRC gets BAD_CRC and leaves scratch as it was."""
    tb = await started(dut)
    assert await tb.write("scratch", 0x1234_5678) is Status.OK
    address = REGISTERS.address_of("scratch")
    frame = bytearray(encode_request(Command.WRITE, address,
                                     encode(REGISTERS["scratch"], 0xDEAD_BEEF)))
    frame[-1] ^= 0x01
    await tb.send_frame(bytes(frame))
    response = await tb.receive_response()
    assert response.status is Status.BAD_CRC
    assert (response.command, response.address, response.payload) == (Command.WRITE, address, b"")
    assert await tb.read("scratch") == 0x1234_5678
    # The error response is counted, so a host can see a noisy line.
    assert (await tb.read("link_status"))["rejected_frames"] == 1


@cocotb.test()
async def write_to_read_only_register_is_refused(dut):
    """Writes to identity registers get READ_ONLY and leave them unchanged."""
    tb = await started(dut)
    assert await tb.write("meter_id", 0x0011_2233_4455_6677) is Status.READ_ONLY
    assert await tb.read("meter_id") == tb.params.meter_id
    assert await tb.write("build_hash", tb.params.build_hash ^ 0xFFFF_FFFF) is Status.READ_ONLY
    assert await tb.read("build_hash") == tb.params.build_hash


@cocotb.test()
async def utc_milliseconds_follow_simulated_time(dut):
    """utc_time advances by the simulated time between two reads, within ±1 ms."""
    tb = await started(dut)

    async def timestamp() -> tuple[int, float]:
        value = await tb.read("utc_time")
        # Both reads are the same frames, so the meter samples the clock the same
        # time before each response ends.
        return value["seconds"] * 1000 + value["millisecond"], get_sim_time("ms")

    meter_before, sim_before = await timestamp()
    await Timer(3, "ms")
    meter_after, sim_after = await timestamp()
    elapsed = sim_after - sim_before
    tb.log.info("meter clock advanced %d ms in %.3f ms of simulated time",
                meter_after - meter_before, elapsed)
    assert elapsed >= 3
    assert abs((meter_after - meter_before) - elapsed) <= 1


@cocotb.test()
async def heartbeat_is_bit_0_of_utc_seconds(dut):
    """The heartbeat pin is bit 0 of utc_time.seconds: low in second 0, rising at 1 s."""
    tb = await started(dut)
    reset_ms = get_sim_time("ms")
    now = await tb.read("utc_time")
    assert now["seconds"] == 0
    assert int(dut.heartbeat.value) == now["seconds"] & 1

    # Let the design run freely (no Python wake-ups) until the heartbeat rises.
    deadline = Timer(1100, "ms")
    fired = await First(RisingEdge(dut.heartbeat), deadline)
    assert fired is not deadline, "heartbeat did not rise within 1.1 s"
    rise_ms = get_sim_time("ms") - reset_ms
    tb.log.info("heartbeat rose %.3f ms after reset", rise_ms)
    # The clock counts from the end of reset (a bit time before `reset_ms`).
    assert 999 <= rise_ms <= 1000

    now = await tb.read("utc_time")
    assert now["seconds"] == 1
    assert int(dut.heartbeat.value) == now["seconds"] & 1 == 1
