"""The meter on a board's pins: the same :class:`Meter` as in simulation."""

from amaranth.build import Platform
from amaranth.hdl import Elaboratable, Module
from amaranth.lib import io

from refmeter.gateware.meter import DEMO_METER_ID, Meter, source_revision

__all__ = ["BoardTop"]


class BoardTop(Elaboratable):
    """:class:`Meter` with its UART on the board's USB serial pins and its
    heartbeat on the first user LED."""

    def __init__(self, *, baud: int, meter_id: int = DEMO_METER_ID):
        self._baud = baud
        self._meter_id = meter_id

    def elaborate(self, platform: Platform):
        m = Module()
        m.submodules.meter = meter = Meter(
            clk_freq=int(platform.default_clk_frequency), baud=self._baud,
            meter_id=self._meter_id, build_hash=source_revision())

        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = uart_rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = uart_tx = io.Buffer("o", uart.tx)
        led = platform.request("led", 0, dir="-")
        m.submodules.led = led_buffer = io.Buffer("o", led)
        m.d.comb += [
            meter.uart_rx.eq(uart_rx.i),
            uart_tx.o.eq(meter.uart_tx),
            led_buffer.o.eq(meter.heartbeat),
        ]
        return m
