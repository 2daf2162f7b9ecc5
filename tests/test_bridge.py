# amaranth: UnusedElaboratable=no
"""The frame bridge on a register bank: good frames, every kind of bad input, and a
byte-level fuzz checked against a Python model of the receiver.

Requests are built with the host codec (``encode_request``); every expected response
is assembled by hand (:func:`gateware_helpers.response_frame`).
"""

import binascii
import random
from collections import Counter
from collections.abc import Callable

import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.lib import wiring

from gateware_helpers import (
    DEMO_RO_VALUES, SOF_BYTE, demo_register_map, expected_status, response_frame,
    run_simulation, ticks, uart_drive, uart_levels, uart_read_byte)
from refmeter.gateware.hostlink.link import HostLink
from refmeter.gateware.hostlink.bridge import FrameBridge
from refmeter.gateware.hostlink.protocol import MAX_PAYLOAD, Command, Status
from refmeter.gateware.registers import Access, RegisterBank
from refmeter.soft.link import encode_request

#: Idle cycles after which the bridge under test drops a partial frame.
FRAME_TIMEOUT = 50

READ, WRITE = Command.READ, Command.WRITE

# demo_register_map(), restated by hand: address, size in bytes, value after reset.
SERIAL_NUMBER = 0x0000, 4, DEMO_RO_VALUES["serial_number"]
DISPLAY_CONTRAST = 0x0001, 1, 0x40
TARIFF_RATE = 0x0002, 3, 0x012345
UNLOCK_KEY = 0x0010, 2, 0   # write-only: what the last write passed on, 0 before any
RELAY_CONTROL = 0x0011, 2, 1 | (5 << 1) | (300 << 4)
SUPPLY_STATUS = 0x0100, 4, DEMO_RO_VALUES["supply_status"]
READABLE = [SERIAL_NUMBER, DISPLAY_CONTRAST, TARIFF_RATE, RELAY_CONTROL, SUPPLY_STATUS]
BUS_BYTES = 4  # the widest register, so the register bus width


class BridgeWithBank(Elaboratable):
    """A :class:`FrameBridge` on a :class:`RegisterBank` of the demo map, with the
    read-only registers tied to ``DEMO_RO_VALUES``."""

    def __init__(self, *, frame_timeout: int = FRAME_TIMEOUT):
        self.register_map = demo_register_map()
        self.bank = RegisterBank(self.register_map)
        self.bridge = FrameBridge(data_width=self.register_map.data_width,
                                  frame_timeout=frame_timeout)

    def elaborate(self, platform):
        m = Module()
        m.submodules.bank = self.bank
        m.submodules.bridge = self.bridge
        wiring.connect(m, self.bridge.bus, self.bank.bus)
        for name, value in DEMO_RO_VALUES.items():
            m.d.comb += getattr(self.bank, name).as_value().eq(value)
        return m


class StreamHost:
    """Plays the host on the bridge's byte streams, one clock cycle per :meth:`step`.

    Records the response bytes, the ``rejected`` pulses and the ``written`` pulses of
    the write-only register, and fails the test once ``budget`` cycles have passed
    (so a hung bridge cannot hang the suite). ``tx_ready`` decides, each cycle,
    whether the host takes a response byte.
    """

    def __init__(self, ctx, top: BridgeWithBank, *, budget: int,
                 tx_ready: Callable[[], bool] = lambda: True):
        self.ctx = ctx
        self.top = top
        self.budget = budget
        self.tx_ready = tx_ready
        self.cycles = 0
        self.rejected = 0
        self.key_writes = 0
        self.last_key = 0
        self._received = bytearray()

    async def step(self) -> bool:
        """Run one cycle; return whether the bridge took the offered request byte."""
        ctx, bridge = self.ctx, self.top.bridge
        ready = self.tx_ready()
        ctx.set(bridge.tx.ready, ready)
        taken = bool(ctx.get(bridge.rx.valid) and ctx.get(bridge.rx.ready))
        if ready and ctx.get(bridge.tx.valid):
            self._received.append(ctx.get(bridge.tx.payload))
        self.rejected += ctx.get(bridge.rejected)
        if ctx.get(self.top.bank.unlock_key.written):
            self.key_writes += 1
            self.last_key = ctx.get(self.top.bank.unlock_key.data.as_value())
        await ctx.tick()
        self.cycles += 1
        if self.cycles > self.budget:
            raise AssertionError(f"the bridge is still busy after {self.budget} cycles")
        return taken

    async def send(self, data, *, gap: int = 0) -> None:
        """Offer ``data`` byte by byte, ``gap`` idle cycles between bytes."""
        rx = self.top.bridge.rx
        for index, byte in enumerate(data):
            if index and gap:
                await self.idle(gap)
            self.ctx.set(rx.payload, byte)
            self.ctx.set(rx.valid, 1)
            while not await self.step():
                pass
            self.ctx.set(rx.valid, 0)

    async def idle(self, cycles: int) -> None:
        for _ in range(cycles):
            await self.step()

    def received(self) -> bytes:
        """The response bytes received since the last :meth:`collect`."""
        return bytes(self._received)

    async def collect(self, *, quiet: int = 16) -> bytes:
        """Run until the bridge has offered nothing for ``quiet`` cycles; return the
        response bytes received since the last call."""
        silent = 0
        while silent < quiet:
            silent = 0 if self.ctx.get(self.top.bridge.tx.valid) else silent + 1
            await self.step()
        received, self._received = bytes(self._received), bytearray()
        return received

    async def exchange(self, frame: bytes, expected: bytes) -> None:
        """Send ``frame``, check the answer is exactly ``expected`` and that
        ``rejected`` pulsed once if it is an error response, else not at all."""
        rejected_before = self.rejected
        await self.send(frame)
        assert (await self.collect()).hex(" ") == expected.hex(" ")
        is_error = expected[3] != Status.OK
        assert self.rejected - rejected_before == is_error, "rejected pulses"

    def stored(self) -> dict[str, int]:
        """What the bank holds now, and what it last passed on through the wo register."""
        bank = self.top.bank
        return {
            "display_contrast": self.ctx.get(bank.display_contrast.as_value()),
            "tariff_rate": self.ctx.get(bank.tariff_rate.as_value()),
            "relay_control": self.ctx.get(bank.relay_control.as_value()),
            "unlock_key": self.last_key,
        }


INITIAL = {"display_contrast": DISPLAY_CONTRAST[2], "tariff_rate": TARIFF_RATE[2],
           "relay_control": RELAY_CONTROL[2], "unlock_key": UNLOCK_KEY[2]}


def run_host(script, *, budget: int = 20_000, frame_timeout: int = FRAME_TIMEOUT,
             tx_ready: Callable[[], bool] = lambda: True) -> None:
    """Simulate a bridge with bank and run ``async script(host)`` against it."""
    top = BridgeWithBank(frame_timeout=frame_timeout)

    async def bench(ctx):
        await script(StreamHost(ctx, top, budget=budget, tx_ready=tx_ready))

    run_simulation(top, bench)


def read_response(register, value=None) -> bytes:
    """The OK answer to a read of ``register`` (address, size, reset value) holding
    ``value``, or its reset value."""
    address, size, init = register
    value = init if value is None else value
    return response_frame(READ, Status.OK, address, value.to_bytes(size, "big"))


def without_sof(rng: random.Random, count: int) -> bytes:
    """``count`` random bytes, none of them SOF."""
    return bytes(rng.choice([b for b in range(256) if b != SOF_BYTE]) for _ in range(count))


# --- Good frames -------------------------------------------------------------------------

def test_reads_return_each_register_big_endian():
    """Reads answer OK with the register's value in exactly its size, big-endian."""
    async def script(host):
        for register in READABLE:
            await host.exchange(encode_request(READ, register[0]), read_response(register))
        assert host.rejected == 0

    run_host(script)


def test_writes_take_effect_and_read_back():
    """Exact-size writes answer OK without payload, reach the bank (wo: one pulse), read back."""
    written = {"display_contrast": (DISPLAY_CONTRAST, 0x99),
               "tariff_rate": (TARIFF_RATE, 0xFEDCBA),
               "relay_control": (RELAY_CONTROL, 0 | (2 << 1) | (17 << 4)),
               "unlock_key": (UNLOCK_KEY, 0x1234)}

    async def script(host):
        for (address, size, _), value in written.values():
            await host.exchange(encode_request(WRITE, address, value.to_bytes(size, "big")),
                                response_frame(WRITE, Status.OK, address))
        assert host.stored() == {name: value for name, (_, value) in written.items()}
        assert host.key_writes == 1
        for name in ("display_contrast", "tariff_rate", "relay_control"):
            register, value = written[name]
            await host.exchange(encode_request(READ, register[0]), read_response(register, value))
        assert host.rejected == 0

    run_host(script)


def test_local_writes_are_authenticated_and_host_frames_never_are():
    """A local write reaches the bank with ``authenticated`` and the unit's authority,
    its value shifted in from ``local.data``, and is answered on ``local.status``. A
    frame the host has begun finishes first; a host frame offered while a local write
    is pending waits for it; host frames are never authenticated; a local write of the
    wrong length is refused like a host's."""
    top = BridgeWithBank()
    accesses = []    # (address, value, authenticated, authority) of every write made

    async def monitor(ctx):
        bus = top.bank.bus
        while True:
            if ctx.get(bus.strobe) and ctx.get(bus.ack) and ctx.get(bus.write) \
                    and ctx.get(bus.status) == Status.OK:
                accesses.append((ctx.get(bus.address), ctx.get(bus.w_data),
                                 ctx.get(bus.authenticated), ctx.get(bus.authority)))
            await ctx.tick()

    async def local_write(host: StreamHost, address, value: bytes, authority) -> Status:
        """Play the security unit, a byte every fourth cycle, while ``host`` steps."""
        local = top.bridge.local
        host.ctx.set(local.request.payload, {"address": address, "length": len(value),
                                             "authority": authority})
        host.ctx.set(local.request.valid, 1)
        while not host.ctx.get(local.request.ready):
            await host.step()
        await host.step()
        host.ctx.set(local.request.valid, 0)
        for byte in value:
            await host.idle(3)
            host.ctx.set(local.data.payload, byte)
            host.ctx.set(local.data.valid, 1)
            while not host.ctx.get(local.data.ready):
                await host.step()
            await host.step()
            host.ctx.set(local.data.valid, 0)
        while not host.ctx.get(local.status.valid):
            await host.step()
        status = Status(host.ctx.get(local.status.payload))
        await host.step()
        return status

    async def bench(ctx):
        host = StreamHost(ctx, top, budget=5_000)
        ctx.set(top.bridge.local.status.ready, 1)
        frame = encode_request(WRITE, DISPLAY_CONTRAST[0], b"\x77")
        await host.send(frame[:3])
        # A local write asked for in the middle of a host's frame waits for it.
        ctx.set(top.bridge.local.request.valid, 1)
        await host.send(frame[3:])
        assert await local_write(host, TARIFF_RATE[0], b"\xAB\xCD\xEF", 4) is Status.OK
        assert host.received() == response_frame(WRITE, Status.OK, DISPLAY_CONTRAST[0])
        await host.collect()
        # A local write pending while the host offers its SOF goes first.
        ctx.set(top.bridge.local.request.payload, {"address": RELAY_CONTROL[0], "length": 2,
                                                   "authority": 1})
        ctx.set(top.bridge.local.request.valid, 1)
        ctx.set(top.bridge.rx.payload, SOF_BYTE)
        ctx.set(top.bridge.rx.valid, 1)
        assert not ctx.get(top.bridge.rx.ready)
        ctx.set(top.bridge.rx.valid, 0)
        assert await local_write(host, RELAY_CONTROL[0], b"\x00\x21", 1) is Status.OK
        assert await local_write(host, TARIFF_RATE[0], b"\x01\x02", 2) is Status.BAD_LENGTH
        assert host.stored()["tariff_rate"] == 0xABCDEF
        await host.exchange(encode_request(WRITE, TARIFF_RATE[0], b"\x00\x00\x05"),
                            response_frame(WRITE, Status.OK, TARIFF_RATE[0]))

    run_simulation(top, bench, background=[monitor])
    assert accesses == [(DISPLAY_CONTRAST[0], 0x77, 0, 0), (TARIFF_RATE[0], 0xABCDEF, 1, 4),
                        (RELAY_CONTROL[0], 0x0021, 1, 1), (TARIFF_RATE[0], 5, 0, 0)]


def test_pipelined_requests_are_answered_in_order():
    """Back-to-back frames are answered in order; a read after a write sees the new value."""
    frames = [encode_request(WRITE, TARIFF_RATE[0], b"\x0a\x0b\x0c"),
              encode_request(READ, TARIFF_RATE[0]),
              encode_request(0x7E, TARIFF_RATE[0]),
              encode_request(READ, SERIAL_NUMBER[0])]
    expected = [response_frame(WRITE, Status.OK, TARIFF_RATE[0]),
                read_response(TARIFF_RATE, 0x0A0B0C),
                response_frame(0x7E, Status.BAD_COMMAND, TARIFF_RATE[0]),
                read_response(SERIAL_NUMBER)]

    async def script(host):
        await host.send(b"".join(frames))
        assert (await host.collect()).hex(" ") == b"".join(expected).hex(" ")
        assert host.rejected == 1

    run_host(script)


def test_responses_survive_back_pressure():
    """Responses arrive whole and in order when the host takes bytes only now and then."""
    rng = random.Random(7)
    frames = [encode_request(READ, register[0]) for register in READABLE] * 2
    expected = [read_response(register) for register in READABLE] * 2

    async def script(host):
        await host.send(b"".join(frames))
        assert (await host.collect(quiet=64)).hex(" ") == b"".join(expected).hex(" ")

    run_host(script, tx_ready=lambda: rng.random() < 0.25)


def test_rejected_pulses_once_per_error_response():
    """``rejected`` pulses for one cycle per error response and never for an OK one."""
    cases = [
        (encode_request(READ, DISPLAY_CONTRAST[0]), Status.OK),
        (encode_request(0x00, DISPLAY_CONTRAST[0]), Status.BAD_COMMAND),
        (encode_request(WRITE, DISPLAY_CONTRAST[0], b"\x01"), Status.OK),
        (encode_request(READ, 0x0777), Status.BAD_ADDRESS),
        (encode_request(READ, UNLOCK_KEY[0]), Status.WRITE_ONLY),
        (encode_request(WRITE, UNLOCK_KEY[0], b"\x01\x02"), Status.OK),
        (encode_request(WRITE, SERIAL_NUMBER[0], b"\x01\x02\x03\x04"), Status.READ_ONLY),
        (encode_request(WRITE, TARIFF_RATE[0], b"\x01"), Status.BAD_LENGTH),
    ]

    async def script(host):
        for frame, status in cases:
            before = host.rejected
            await host.send(frame)
            response = await host.collect()
            assert response[3] == status
            assert host.rejected - before == (status != Status.OK), f"after {status.name}"
        assert host.rejected == sum(status != Status.OK for _, status in cases)

    run_host(script)


# --- Bad input, one kind at a time ---------------------------------------------------

@pytest.mark.parametrize("position", ["command", "address-low", "payload", "crc-high", "crc-low"])
def test_bad_crc_is_answered_and_not_performed(position):
    """A corrupted frame is answered BAD_CRC, echoing command and address, and changes nothing."""
    frame = bytearray(encode_request(WRITE, TARIFF_RATE[0], b"\xaa\xbb\xcc"))
    index = {"command": 2, "address-low": 4, "payload": 6, "crc-high": 8, "crc-low": 9}[position]
    frame[index] ^= 0x10
    echo_command, echo_address = frame[2], (frame[3] << 8) | frame[4]

    async def script(host):
        await host.exchange(bytes(frame),
                            response_frame(echo_command, Status.BAD_CRC, echo_address))
        assert host.stored() == INITIAL and host.key_writes == 0
        await host.exchange(encode_request(READ, TARIFF_RATE[0]), read_response(TARIFF_RATE))

    run_host(script)


@pytest.mark.parametrize("length", [MAX_PAYLOAD + 1, SOF_BYTE, 0xFF])
def test_length_above_max_payload_is_answered_at_once(length):
    """LEN above MAX_PAYLOAD is answered BAD_LENGTH (command/address 0) at once; link recovers."""
    rng = random.Random(length)

    async def script(host):
        # A frame first, so a command or address left over from it would show.
        await host.exchange(encode_request(READ, TARIFF_RATE[0]), read_response(TARIFF_RATE))
        await host.send([SOF_BYTE, length])
        await host.idle(8 + 2)  # eight response bytes, a cycle each, and a little slack
        assert host.received().hex(" ") == response_frame(0, Status.BAD_LENGTH, 0).hex(" ")
        assert host.rejected == 1
        await host.collect()
        await host.send(without_sof(rng, 3 + min(length, 40) + 2))
        assert await host.collect() == b""
        await host.exchange(encode_request(READ, TARIFF_RATE[0]), read_response(TARIFF_RATE))
        assert host.stored() == INITIAL

    run_host(script)


def test_write_with_wrong_length_is_refused():
    """A write not of the register's size (up to bus width) is BAD_LENGTH and changes nothing."""
    writable = [DISPLAY_CONTRAST, TARIFF_RATE, UNLOCK_KEY, RELAY_CONTROL]

    async def script(host):
        for address, size, _ in writable:
            for length in range(0, BUS_BYTES + 1):
                if length != size:
                    await host.exchange(encode_request(WRITE, address, bytes(range(1, length + 1))),
                                        response_frame(WRITE, Status.BAD_LENGTH, address))
        assert host.stored() == INITIAL and host.key_writes == 0

    run_host(script)


def test_payload_longer_than_the_bus_is_refused():
    """Payloads longer than the widest register are BAD_LENGTH for reads and writes alike."""
    async def script(host):
        accepted = []
        for length in range(BUS_BYTES + 1, MAX_PAYLOAD + 1):
            payload = bytes(range(0x11, 0x11 + length))
            for command, (address, _, _) in [(WRITE, DISPLAY_CONTRAST), (WRITE, TARIFF_RATE),
                                            (WRITE, UNLOCK_KEY), (READ, SERIAL_NUMBER)]:
                await host.send(encode_request(command, address, payload))
                response = await host.collect()
                if response != response_frame(command, Status.BAD_LENGTH, address):
                    accepted.append(f"{command.name} of {address:#06x} with {length} bytes "
                                    f"answered {Status(response[3]).name}")
        assert not accepted, "accepted: " + "; ".join(accepted)
        assert host.stored() == INITIAL and host.key_writes == 0

    run_host(script)


@pytest.mark.parametrize("command", [0x00, 0x03, SOF_BYTE, 0x81, 0xFF])
def test_unknown_command_is_refused(command):
    """An unknown command is answered BAD_COMMAND, even at an unknown address, changing nothing."""
    async def script(host):
        for address, payload in [(DISPLAY_CONTRAST[0], b"\x77"), (UNLOCK_KEY[0], b"\x01\x02"),
                                 (0x0BAD, b"")]:
            await host.exchange(encode_request(command, address, payload),
                                response_frame(command, Status.BAD_COMMAND, address))
        assert host.stored() == INITIAL and host.key_writes == 0

    run_host(script)


def test_unknown_address_is_refused():
    """Reads and writes of an address with no register are answered BAD_ADDRESS."""
    async def script(host):
        for address in [0x0003, 0x000F, 0x0012, 0x00FF, 0x0101, 0x8000, 0xFFFF]:
            await host.exchange(encode_request(READ, address),
                                response_frame(READ, Status.BAD_ADDRESS, address))
            await host.exchange(encode_request(WRITE, address, b"\x01"),
                                response_frame(WRITE, Status.BAD_ADDRESS, address))
        assert host.stored() == INITIAL

    run_host(script)


def test_write_to_read_only_register_is_refused():
    """A write to an ro register is READ_ONLY at any length; the register still reads its value."""
    async def script(host):
        for register in (SERIAL_NUMBER, SUPPLY_STATUS):
            for length in (register[1], 1, 0):
                await host.exchange(encode_request(WRITE, register[0], bytes(length)),
                                    response_frame(WRITE, Status.READ_ONLY, register[0]))
            await host.exchange(encode_request(READ, register[0]), read_response(register))

    run_host(script)


def test_read_of_write_only_register_is_refused():
    """A read of the wo register is WRITE_ONLY without payload, with or without request payload."""
    async def script(host):
        for payload in (b"", b"\x01\x02"):
            await host.exchange(encode_request(READ, UNLOCK_KEY[0], payload),
                                response_frame(READ, Status.WRITE_ONLY, UNLOCK_KEY[0]))
        assert host.key_writes == 0

    run_host(script)


def test_garbage_between_frames_is_skipped():
    """Non-SOF bytes between frames get no answer and the frames are answered normally."""
    rng = random.Random(3)
    write = encode_request(WRITE, RELAY_CONTROL[0], b"\x01\x23")
    read = encode_request(READ, RELAY_CONTROL[0])

    async def script(host):
        await host.send(without_sof(rng, 40) + write + without_sof(rng, 40) + read
                        + without_sof(rng, 40))
        assert (await host.collect()).hex(" ") == (
            response_frame(WRITE, Status.OK, RELAY_CONTROL[0])
            + read_response(RELAY_CONTROL, 0x0123)).hex(" ")
        assert host.rejected == 0

    run_host(script)


@pytest.mark.parametrize("cut", [1, 2, 4, 6, 9])
def test_frame_cut_short_is_dropped_after_timeout(cut):
    """A frame idle for ``frame_timeout`` cycles is dropped unanswered; the next frame works."""
    frame = encode_request(WRITE, TARIFF_RATE[0], b"\x0a\x0b\x0c")

    async def script(host):
        await host.send(frame[:cut])
        await host.idle(FRAME_TIMEOUT)
        await host.exchange(encode_request(READ, TARIFF_RATE[0]), read_response(TARIFF_RATE))
        assert host.stored() == INITIAL and host.rejected == 0

    run_host(script)


def test_frame_with_gaps_just_under_timeout_is_kept():
    """Gaps of ``frame_timeout - 1`` cycles between a frame's bytes do not drop it."""
    async def script(host):
        await host.send(encode_request(WRITE, TARIFF_RATE[0], b"\x0a\x0b\x0c"),
                        gap=FRAME_TIMEOUT - 1)
        expected = response_frame(WRITE, Status.OK, TARIFF_RATE[0])
        assert (await host.collect()).hex(" ") == expected.hex(" ")
        assert host.stored()["tariff_rate"] == 0x0A0B0C

    run_host(script)


# --- Fuzz -------------------------------------------------------------------------------

class BridgeModel:
    """The bridge and bank as their docstrings describe them, byte by byte.

    ``feed`` returns the response a byte completes (if any); ``idle`` drops a partial
    frame when the gap reaches the frame timeout. ``values`` holds what the bank
    should hold; ``answers`` counts responses by status.
    """

    def __init__(self, register_map, frame_timeout: int):
        self.register_map = register_map
        self.frame_timeout = frame_timeout
        self.values = {register.name: register.init for _, register in register_map
                       if register.access is not Access.RO}
        self.key_writes = 0
        self.answers = Counter()  # responses by status
        self._frame = None  # bytes after SOF, or None while hunting for SOF

    def idle(self, cycles: int) -> None:
        if cycles >= self.frame_timeout:
            self._frame = None

    def feed(self, byte: int) -> bytes:
        if self._frame is None:
            if byte == SOF_BYTE:
                self._frame = bytearray()
            return b""
        self._frame.append(byte)
        length = self._frame[0]
        if length > MAX_PAYLOAD:
            self._frame = None
            return self._answer(0, Status.BAD_LENGTH, 0)
        if len(self._frame) < 4 + length + 2:
            return b""
        frame, self._frame = bytes(self._frame), None
        command, address, payload = frame[1], int.from_bytes(frame[2:4], "big"), frame[4:-2]
        if binascii.crc_hqx(frame[:-2], 0xFFFF) != int.from_bytes(frame[-2:], "big"):
            return self._answer(command, Status.BAD_CRC, address)
        status = expected_status(self.register_map, command, address, length)
        data = b""
        if status is Status.OK:
            register = next(r for a, r in self.register_map if a == address)
            if command == WRITE:
                self.values[register.name] = int.from_bytes(payload, "big")
                self.key_writes += register.access is Access.WO
            elif register.access is Access.RO:
                data = DEMO_RO_VALUES[register.name].to_bytes(register.size, "big")
            else:
                data = self.values[register.name].to_bytes(register.size, "big")
        return self._answer(command, status, address, data)

    def _answer(self, command, status, address, data=b""):
        self.answers[status] += 1
        return response_frame(command, status, address, data)


def fuzz_stream(rng: random.Random, register_map, count: int, *,
                valid_frames: bool) -> list[tuple[int, int]]:
    """About ``count`` request bytes as (idle cycles before, byte): random bytes, biased
    towards SOF and small lengths so the parser goes deep, with corrupted and truncated
    frames mixed in, and with ``valid_frames`` some whole valid ones too."""
    registers = list(register_map)
    bus_bytes = register_map.data_width // 8

    def some_frame():
        address, register = rng.choice(registers)
        if rng.random() < 0.2:
            address = rng.randrange(1 << 16)
        command = rng.choice([READ, WRITE, WRITE, rng.randrange(256)])
        width = sum(field.width for field in register.fields)
        if command == WRITE and rng.random() < 0.8:
            payload = rng.randrange(1 << width).to_bytes(register.size, "big")
        else:
            # Longer payloads than the bus are left to
            # test_payload_longer_than_the_bus_is_refused.
            payload = rng.randbytes(rng.choice([0, 0, rng.randrange(bus_bytes + 1)]))
        return encode_request(command, address, payload)

    stream = []
    while len(stream) < count:
        choice = rng.random()
        if choice < 0.40:
            chunk = [rng.randrange(256)]
        elif choice < 0.52:
            chunk = [SOF_BYTE]
        elif choice < 0.70:
            chunk = [SOF_BYTE, rng.randrange(MAX_PAYLOAD + 1),
                     rng.choice([READ, WRITE, rng.randrange(256)])]
        elif choice < 0.82 and valid_frames:
            # A valid frame, often after a pause that ends any partial frame before it.
            chunk = list(some_frame())
            if rng.random() < 0.5:
                stream.append((2 * FRAME_TIMEOUT, chunk.pop(0)))
        elif choice < 0.92:
            # One flipped bit, which CRC-16 always catches.
            chunk = list(some_frame())
            chunk[rng.randrange(1, len(chunk))] ^= 1 << rng.randrange(8)
        else:
            frame = some_frame()
            chunk = list(frame[:rng.randrange(1, len(frame))])
        for byte in chunk:
            roll = rng.random()
            if roll < 0.01:
                gap = 2 * FRAME_TIMEOUT
            elif roll < 0.06:
                gap = rng.randrange(1, FRAME_TIMEOUT // 2)
            else:
                gap = 0
            stream.append((gap, byte))
    return stream


@pytest.mark.parametrize("seed, valid_frames", [(1, True), (2, True), (3, True), (4, False)])
def test_fuzzed_byte_stream_matches_model(seed, valid_frames):
    """A fuzzed byte stream gets the model's responses and register values within a cycle budget."""
    rng = random.Random(seed)
    register_map = demo_register_map()
    stream = fuzz_stream(rng, register_map, 4000, valid_frames=valid_frames)
    model = BridgeModel(register_map, FRAME_TIMEOUT)

    async def script(host):
        expected = bytearray()
        for gap, byte in stream:
            if gap:
                model.idle(gap)
                await host.idle(gap)
            expected += model.feed(byte)
            await host.send([byte])
        model.idle(FRAME_TIMEOUT + 2)
        await host.idle(FRAME_TIMEOUT + 2)
        received = await host.collect(quiet=64)
        if valid_frames:
            # The demo map has no guarded register: guards are tested on the bank itself.
            assert set(model.answers) == set(Status) - {
                Status.SEALED, Status.UNAUTHENTICATED, Status.FORBIDDEN}, (
                f"the fuzz missed cases: {model.answers}")
        else:
            assert model.values == INITIAL and model.answers[Status.OK] == 0
            assert model.answers[Status.BAD_CRC] > 100, f"a shallow fuzz: {model.answers}"
        assert received.hex(" ") == expected.hex(" ")
        assert host.rejected == model.answers.total() - model.answers[Status.OK]
        assert host.stored() == model.values
        assert host.key_writes == model.key_writes
        # The link still answers, and reads agree with the model.
        for address, register in register_map:
            if register.access is not Access.WO:
                value = DEMO_RO_VALUES.get(register.name, model.values.get(register.name))
                await host.exchange(encode_request(READ, address),
                                    read_response((address, register.size, value)))

    run_host(script, budget=60_000, tx_ready=lambda: rng.random() < 0.7)


# --- Through the UART pins ------------------------------------------------------------

class HostLinkWithBank(Elaboratable):
    """A :class:`HostLink` on a :class:`RegisterBank` of the demo map."""

    def __init__(self, *, divisor: int, frame_timeout: int):
        self.register_map = demo_register_map()
        self.bank = RegisterBank(self.register_map)
        self.hostlink = HostLink(data_width=self.register_map.data_width, divisor=divisor,
                                 frame_timeout=frame_timeout)

    def elaborate(self, platform):
        m = Module()
        m.submodules.bank = self.bank
        m.submodules.hostlink = self.hostlink
        wiring.connect(m, self.hostlink.bus, self.bank.bus)
        for name, value in DEMO_RO_VALUES.items():
            m.d.comb += getattr(self.bank, name).as_value().eq(value)
        return m


def test_hostlink_answers_pipelined_frames_over_uart():
    """Over UART pins, pipelined frames are answered in order and the error counters count."""
    divisor = 4
    top = HostLinkWithBank(divisor=divisor, frame_timeout=20 * divisor)
    link = top.hostlink
    frames = [encode_request(WRITE, TARIFF_RATE[0], b"\x0a\x0b\x0c"),
              encode_request(READ, TARIFF_RATE[0]),
              encode_request(READ, 0x0BAD),
              encode_request(READ, SUPPLY_STATUS[0])]
    expected = b"".join([response_frame(WRITE, Status.OK, TARIFF_RATE[0]),
                         read_response(TARIFF_RATE, 0x0A0B0C),
                         response_frame(READ, Status.BAD_ADDRESS, 0x0BAD),
                         read_response(SUPPLY_STATUS)])
    received = bytearray()

    async def host_tx(ctx):
        await ticks(ctx, 10)
        levels = uart_levels([SOF_BYTE], stop_bit=0) + [1] * 3 + uart_levels(b"".join(frames))
        await uart_drive(ctx, link.rx, levels, period=divisor)

    async def host_rx(ctx):
        while len(received) < len(expected):
            received.append(await uart_read_byte(ctx, link.tx, divisor=divisor,
                                                 timeout=400 * divisor))
        await ticks(ctx, 3 * divisor)
        assert ctx.get(link.rejected_frames) == 1
        assert ctx.get(link.framing_errors) == 1
        assert ctx.get(link.overruns) == 0

    run_simulation(top, host_tx, host_rx)
    assert bytes(received).hex(" ") == expected.hex(" ")
