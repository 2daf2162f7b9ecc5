"""8N1 UART receiver and transmitter with byte streams.

``divisor`` is the bit time in clock cycles (``round(clk_freq / baud)``).
"""

from amaranth.hdl import Module, Signal, Cat
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UARTReceiver", "UARTTransmitter", "baud_divisor"]

MIN_DIVISOR = 4


def baud_divisor(clk_freq: int, baud: int) -> int:
    """Clock cycles per bit for ``baud`` at ``clk_freq`` Hz, refusing a rate the
    clock cannot make within 2 % (the margin an 8N1 receiver can absorb)."""
    divisor = round(clk_freq / baud)
    if divisor < MIN_DIVISOR:
        raise ValueError(f"{baud} baud needs at least {MIN_DIVISOR * baud} Hz; the clock is {clk_freq} Hz")
    error = abs(clk_freq / divisor - baud) / baud
    if error > 0.02:
        raise ValueError(f"{baud} baud from {clk_freq} Hz is off by {error:.1%} (more than 2 %)")
    return divisor


class _UARTComponent(wiring.Component):
    """What both directions share: a bit time of ``divisor`` clock cycles."""

    def __init__(self, *, divisor: int):
        if not isinstance(divisor, int) or divisor < MIN_DIVISOR:
            raise ValueError(f"UART divisor must be an integer of at least {MIN_DIVISOR}, "
                             f"not {divisor!r}")
        self._divisor = divisor
        super().__init__()

    @property
    def divisor(self) -> int:
        return self._divisor


class UARTReceiver(_UARTComponent):
    """Receives 8N1 bytes on ``rx`` (asynchronous; synchronised inside).

    A received byte stays on ``data`` until taken. A byte whose stop bit is low is
    dropped with a ``framing_error`` pulse; a byte that completes while the previous
    one has not been taken is dropped with an ``overrun`` pulse.
    """

    rx: In(1, init=1)
    data: Out(stream.Signature(8))
    framing_error: Out(1)
    overrun: Out(1)

    def elaborate(self, platform):
        m = Module()

        rx = Signal(init=1)
        m.submodules.rx_sync = FFSynchronizer(self.rx, rx, init=1)

        timer = Signal(range(self._divisor))
        bit_index = Signal(range(8))
        shift = Signal(8)

        with m.If(self.data.ready):
            m.d.sync += self.data.valid.eq(0)
        m.d.sync += [self.framing_error.eq(0), self.overrun.eq(0)]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(self._divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(rx):  # a glitch, not a start bit
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += [timer.eq(self._divisor - 1), bit_index.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [shift.eq(Cat(shift[1:], rx)), timer.eq(self._divisor - 1),
                                 bit_index.eq(bit_index + 1)]
                    with m.If(bit_index == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    with m.If(~rx):
                        m.d.sync += self.framing_error.eq(1)
                    with m.Elif(self.data.valid & ~self.data.ready):
                        m.d.sync += self.overrun.eq(1)
                    with m.Else():
                        m.d.sync += [self.data.payload.eq(shift), self.data.valid.eq(1)]
                    # Back to IDLE at mid-stop-bit: the receiver is ready for a start
                    # edge half a bit early, which absorbs transmitter clock skew.
                    m.next = "IDLE"
        return m


class UARTTransmitter(_UARTComponent):
    """Sends each byte taken from ``data`` as 8N1 on ``tx``."""

    data: In(stream.Signature(8))
    tx: Out(1, init=1)

    def elaborate(self, platform):
        m = Module()

        timer = Signal(range(self._divisor))
        bits_left = Signal(range(11))
        frame = Signal(10, init=1)  # stop bit, data LSB first, start bit; idle high

        m.d.comb += self.tx.eq(frame[0])
        # The next byte may start as the stop bit's last cycle ends: back to back
        # bytes take exactly 10 bit times.
        stop_bit_ending = (bits_left == 1) & (timer == 0)
        with m.If((bits_left == 0) | stop_bit_ending):
            m.d.comb += self.data.ready.eq(1)
            with m.If(self.data.valid):
                m.d.sync += [frame.eq(Cat(0, self.data.payload, 1)), bits_left.eq(10),
                             timer.eq(self._divisor - 1)]
            with m.Elif(stop_bit_ending):
                m.d.sync += [frame.eq(Cat(frame[1:], 1)), bits_left.eq(0)]
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Else():
            m.d.sync += [frame.eq(Cat(frame[1:], 1)), bits_left.eq(bits_left - 1),
                         timer.eq(self._divisor - 1)]
        return m
