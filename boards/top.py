"""The meter on a board's pins: the same :class:`Meter` as in simulation."""

from amaranth.build import Platform
from amaranth.hdl import Elaboratable, Module
from amaranth.lib import io, wiring

from refmeter.gateware.interlock import LatchingRelayModel
from refmeter.gateware.meter import DEMO_METER_ID, Meter, source_revision

__all__ = ["BoardTop"]


class BoardTop(Elaboratable):
    """:class:`Meter` on a board: its UART on the USB serial pins, the ADC and the
    seal where ``resources`` put them, the heartbeat on the first user LED and the
    energy pulse on the second.

    With the interlock, the relays are stand-ins whose contacts follow the coils
    (:class:`~refmeter.gateware.interlock.LatchingRelayModel`), shown on LEDs 2
    (supply) and 3 (priority circuit), the auxiliary level on LEDs 4 (reduced) and
    5 (off); button 0 is the reconnect button, button 1 the auxiliary override and
    switch 0 the isolation switch."""

    def __init__(self, *, baud: int, resources, phases: int, profile_capacity: int,
                 security: bool, interlock: bool, meter_id: int = DEMO_METER_ID):
        self._baud = baud
        self._resources = resources
        self._phases = phases
        self._profile_capacity = profile_capacity
        self._security = security
        self._interlock = interlock
        self._meter_id = meter_id

    def elaborate(self, platform: Platform):
        m = Module()
        m.submodules.meter = meter = Meter(
            clk_freq=int(platform.default_clk_frequency), baud=self._baud,
            meter_id=self._meter_id, build_hash=source_revision(),
            phases=self._phases, profile_capacity=self._profile_capacity,
            security=self._security, interlock=self._interlock)

        platform.add_resources(self._resources)
        uart = platform.request("uart", 0, dir="-")
        adc = platform.request("ads131m04", 0, dir="-")
        inputs = [
            (meter.uart_rx, uart.rx),
            (meter.adc_cipo, adc.cipo),
            (meter.adc_drdy_n, adc.drdy_n),
            (meter.seal_open, platform.request("seal_open", 0, dir="-")),
        ]
        outputs = [
            (meter.uart_tx, uart.tx),
            (meter.adc_sclk, adc.sclk),
            (meter.adc_cs_n, adc.cs_n),
            (meter.adc_copi, adc.copi),
            (meter.heartbeat, platform.request("led", 0, dir="-")),
            (meter.energy_pulse, platform.request("led", 1, dir="-")),
        ]
        if self._interlock:
            inputs += [(meter.button, platform.request("button", 0, dir="-")),
                       (meter.aux_override, platform.request("button", 1, dir="-")),
                       (meter.isolate, platform.request("switch", 0, dir="-"))]
            for index, relay in enumerate(("main_relay", "priority_relay")):
                m.submodules[relay] = model = LatchingRelayModel(closed=True)
                wiring.connect(m, getattr(meter, relay), model.relay)
                outputs.append((model.relay.closed, platform.request("led", 2 + index, dir="-")))
            outputs += [(meter.aux_level.as_value()[0], platform.request("led", 4, dir="-")),
                        (meter.aux_level.as_value()[1], platform.request("led", 5, dir="-"))]
        # Resources marked PinsN invert in the buffer, so the meter sees logic levels.
        for signal, port in inputs:
            m.submodules += (buffer := io.Buffer("i", port))
            m.d.comb += signal.eq(buffer.i)
        for signal, port in outputs:
            m.submodules += (buffer := io.Buffer("o", port))
            m.d.comb += buffer.o.eq(signal)
        m.submodules += (adc_reset := io.Buffer("o", adc.reset))
        m.d.comb += adc_reset.o.eq(0)  # the ADC runs; SYNC/RESET is only for resynchronising
        return m
