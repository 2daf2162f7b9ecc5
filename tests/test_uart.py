# amaranth: UnusedElaboratable=no
"""The host-link UART against an independent 8N1 line model."""

import random

import pytest

from gateware_helpers import run_simulation, ticks, uart_drive, uart_levels, uart_read_byte
from refmeter.gateware.hostlink.uart import UARTReceiver, UARTTransmitter, baud_divisor


class ReceiverMonitor:
    """Background testbench that counts what a :class:`UARTReceiver` reports.

    With ``take`` it keeps ``data.ready`` high and records every byte transferred;
    without it, ``ready`` is left to the test.
    """

    def __init__(self, receiver: UARTReceiver, *, take: bool = True):
        self.receiver = receiver
        self.take = take
        self.received: list[int] = []
        self.framing_errors = 0
        self.overruns = 0

    async def run(self, ctx):
        data = self.receiver.data
        while True:
            if self.take:
                ctx.set(data.ready, 1)
            if ctx.get(data.valid) and ctx.get(data.ready):
                self.received.append(ctx.get(data.payload))
            self.framing_errors += ctx.get(self.receiver.framing_error)
            self.overruns += ctx.get(self.receiver.overrun)
            await ctx.tick()


async def send_bytes(ctx, sink, data):
    """Offer ``data`` on stream ``sink`` back to back, keeping ``valid`` high throughout."""
    for byte in data:
        ctx.set(sink.payload, byte)
        ctx.set(sink.valid, 1)
        while True:
            taken = ctx.get(sink.ready)
            await ctx.tick()
            if taken:
                break
    ctx.set(sink.valid, 0)


# --- Transmitter ---------------------------------------------------------------------

@pytest.mark.parametrize("divisor", [4, 7])
def test_transmitter_sends_every_byte_value(divisor):
    """Every byte 0..255, offered back to back, is decoded by the line model in order."""
    dut = UARTTransmitter(divisor=divisor)
    decoded = []

    async def producer(ctx):
        await send_bytes(ctx, dut.data, range(256))

    async def line(ctx):
        for _ in range(256):
            decoded.append(await uart_read_byte(ctx, dut.tx, divisor=divisor,
                                                timeout=20 * divisor))

    run_simulation(dut, producer, line)
    assert decoded == list(range(256))


@pytest.mark.parametrize("divisor", [4, 5, 8])
def test_transmitter_waveform_has_exact_bit_times(divisor):
    """Every bit lasts exactly ``divisor`` cycles; back-to-back bytes leave no gap."""
    dut = UARTTransmitter(divisor=divisor)
    data = [0x00, 0xFF, 0x5A, 0x81, 0x3C]
    trace = []

    async def producer(ctx):
        await ticks(ctx, 3)
        await send_bytes(ctx, dut.data, data)

    async def recorder(ctx):
        for _ in range(3 + (len(data) * 11 + 3) * divisor):
            trace.append(ctx.get(dut.tx))
            await ctx.tick()

    run_simulation(dut, producer, recorder)
    start = trace.index(0)
    assert start <= 4, "the first start bit should follow the first offer at once"
    assert all(trace[:start]), "the line is idle high before the first byte"
    for byte in data:
        bits = uart_levels([byte])
        expected = [level for level in bits for _ in range(divisor)]
        assert trace[start:start + len(expected)] == expected, f"byte {byte:#04x}"
        start += len(expected)
    assert all(trace[start:]), "the line returns to idle high"


def test_transmitter_idles_high_and_ready():
    """An idle transmitter holds ``tx`` high and is ready for a byte."""
    dut = UARTTransmitter(divisor=4)

    async def bench(ctx):
        for _ in range(10):
            assert ctx.get(dut.tx) == 1
            assert ctx.get(dut.data.ready) == 1
            await ctx.tick()

    run_simulation(dut, bench)


# --- Receiver ----------------------------------------------------------------------

@pytest.mark.parametrize("divisor", [4, 7])
def test_receiver_receives_every_byte_value(divisor):
    """Every byte 0..255 driven back to back at the exact bit time is received, without errors."""
    dut = UARTReceiver(divisor=divisor)
    monitor = ReceiverMonitor(dut)

    async def line(ctx):
        await ticks(ctx, 5)
        await uart_drive(ctx, dut.rx, uart_levels(range(256)), period=divisor)
        await ticks(ctx, 2 * divisor)

    run_simulation(dut, line, background=[monitor.run])
    assert monitor.received == list(range(256))
    assert (monitor.framing_errors, monitor.overruns) == (0, 0)


@pytest.mark.parametrize("mismatch", [-0.02, +0.02])
def test_receiver_tolerates_two_percent_baud_mismatch(mismatch):
    """Bytes sent back to back by a transmitter 2 % fast or slow are all received."""
    divisor = 16
    rng = random.Random(20)
    data = [0x00, 0xFF, 0x55, 0xAA, 0x01, 0x80, 0x7F, 0xFE]
    data += [rng.randrange(256) for _ in range(24)]
    dut = UARTReceiver(divisor=divisor)
    monitor = ReceiverMonitor(dut)

    async def line(ctx):
        await ticks(ctx, 5)
        await uart_drive(ctx, dut.rx, uart_levels(data), period=divisor * (1 + mismatch))
        await ticks(ctx, 2 * divisor)

    run_simulation(dut, line, background=[monitor.run])
    assert monitor.received == data
    assert (monitor.framing_errors, monitor.overruns) == (0, 0)


@pytest.mark.parametrize("byte", [0x00, 0xA7, 0xFF])
def test_receiver_reports_framing_error_and_drops_byte(byte):
    """A low stop bit gives one ``framing_error`` pulse and no byte; the next byte gets through."""
    divisor = 8
    dut = UARTReceiver(divisor=divisor)
    monitor = ReceiverMonitor(dut)

    async def line(ctx):
        await ticks(ctx, 5)
        await uart_drive(ctx, dut.rx, uart_levels([byte], stop_bit=0) + [1, 1, 1],
                         period=divisor)
        assert monitor.received == [] and monitor.framing_errors == 1
        await uart_drive(ctx, dut.rx, uart_levels([0x3C]) + [1], period=divisor)

    run_simulation(dut, line, background=[monitor.run])
    assert monitor.received == [0x3C]
    assert (monitor.framing_errors, monitor.overruns) == (1, 0)


def test_receiver_reports_overrun_and_keeps_first_byte():
    """A byte completing over an untaken one pulses ``overrun`` and keeps the first byte."""
    divisor = 8
    dut = UARTReceiver(divisor=divisor)
    monitor = ReceiverMonitor(dut, take=False)

    async def line(ctx):
        ctx.set(dut.data.ready, 0)
        await ticks(ctx, 5)
        await uart_drive(ctx, dut.rx, uart_levels([0x11, 0x22]) + [1, 1], period=divisor)
        assert (monitor.framing_errors, monitor.overruns) == (0, 1)
        assert ctx.get(dut.data.valid) == 1
        assert ctx.get(dut.data.payload) == 0x11
        ctx.set(dut.data.ready, 1)
        await ctx.tick()
        assert ctx.get(dut.data.valid) == 0, "nothing is left once the first byte is taken"
        await ticks(ctx, 2 * divisor)
        assert ctx.get(dut.data.valid) == 0

    run_simulation(dut, line, background=[monitor.run])


@pytest.mark.parametrize("glitch_cycles", [1, 2, 3])
def test_receiver_ignores_glitch_shorter_than_half_a_bit(glitch_cycles):
    """``rx`` low for under half a bit is no start bit: no byte, no error, next byte intact."""
    divisor = 8
    dut = UARTReceiver(divisor=divisor)
    monitor = ReceiverMonitor(dut)

    async def line(ctx):
        await ticks(ctx, 5)
        ctx.set(dut.rx, 0)
        await ticks(ctx, glitch_cycles)
        ctx.set(dut.rx, 1)
        await ticks(ctx, 12 * divisor)
        assert monitor.received == [] and monitor.framing_errors == 0
        await uart_drive(ctx, dut.rx, uart_levels([0xC5]) + [1], period=divisor)

    run_simulation(dut, line, background=[monitor.run])
    assert monitor.received == [0xC5]
    assert (monitor.framing_errors, monitor.overruns) == (0, 0)


# --- Divisor ----------------------------------------------------------------------------

def test_baud_divisor_for_115200_at_12_mhz():
    """115200 baud at 12 MHz gets the whole divisor closest to the exact bit time."""
    clk_freq, baud = 12_000_000, 115_200
    best = min(range(4, 1000), key=lambda divisor: abs(clk_freq / divisor - baud))
    assert baud_divisor(clk_freq, baud) == best
    assert abs(clk_freq / best - baud) / baud < 0.02


@pytest.mark.parametrize("clk_freq, baud", [
    (1_000_000, round(100_000 / 1.019)),   # 1.9 % off with divisor 10
    (1_000_000, round(100_000 / 0.981)),
    (12_000_000, 3_000_000),               # exactly 4 cycles a bit
])
def test_baud_divisor_accepts_rates_within_two_percent(clk_freq, baud):
    """A rate the clock makes within 2 % and at 4 or more cycles a bit is accepted."""
    divisor = baud_divisor(clk_freq, baud)
    assert divisor >= 4
    assert abs(clk_freq / divisor - baud) / baud <= 0.02


@pytest.mark.parametrize("clk_freq, baud", [
    (1_000_000, round(100_000 / 1.021)),   # 2.1 % off with divisor 10
    (1_000_000, round(100_000 / 0.979)),
    (1_000_000, 115_200),                  # divisor 9 is 3.5 % off
    (12_000_000, 4_000_000),               # 3 cycles a bit
    (12_000_000, 12_000_000),
])
def test_baud_divisor_refuses_inexact_or_too_fast_rates(clk_freq, baud):
    """A rate more than 2 % off, or under 4 cycles a bit, raises ValueError naming it."""
    with pytest.raises(ValueError, match=str(baud)):
        baud_divisor(clk_freq, baud)


@pytest.mark.parametrize("component", [UARTReceiver, UARTTransmitter])
@pytest.mark.parametrize("divisor", [3, 0, -8, 4.0])
def test_uart_refuses_divisor_below_four(component, divisor):
    """Both UART halves refuse a divisor that is not an integer of at least 4."""
    with pytest.raises(ValueError, match="divisor"):
        component(divisor=divisor)


@pytest.mark.parametrize("component", [UARTReceiver, UARTTransmitter])
def test_uart_accepts_divisor_four(component):
    """Both UART halves accept the smallest divisor, 4, and report it."""
    assert component(divisor=4).divisor == 4
