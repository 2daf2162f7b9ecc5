"""A meter with the host's end of its serial link and models of its ADCs and relays.

Simulators drive the harness byte by byte and sample set by sample set, instead of
bit by bit: the bytes still cross the meter's real UART pins, serialised by the
same UART gateware the meter uses, and the sample sets cross its real SPI pins,
served by a model of each ADS131M04; the simulator's own loop is woken once per
byte or sample set.
"""

from amaranth.hdl import Module
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from refmeter.gateware.adc.ads131m04 import SAMPLE_LAYOUT, sample_layout
from refmeter.gateware.hostlink.uart import UARTReceiver, UARTTransmitter
from refmeter.gateware.interlock import LatchingRelayModel
from refmeter.gateware.meter import Meter, adc_devices

from .ads131m04 import ADS131M04Model

__all__ = ["SimHarness", "SIM_CLK_FREQ", "SIM_BAUD", "PANEL_INPUTS"]

#: The simulated meter runs at the iCEBreaker's 12 MHz, so timers mean the same ...
SIM_CLK_FREQ = 12_000_000
#: ... but its UART at 8 cycles per bit: a TCP client has no baud rate to match.
SIM_BAUD = SIM_CLK_FREQ // 8
#: The meter's inputs a person works, bit 0 first on the harness's ``panel`` port.
PANEL_INPUTS = ("button", "isolate", "aux_override")


class SimHarness(wiring.Component):
    """``meter`` plus a host-side UART with FIFOs, and two latching relays, closed at
    power-up (a connected home), whose contacts follow the meter's coils.

    Attributes
    ----------
    to_meter : stream in
        Bytes for the meter's UART receiver.
    utc_preset : stream in
        UTC seconds to start the meter's clock at (the simulator sends the host's time).
    adc_codes : stream in
        The ADCs' next conversion (every channel of device 0, then device 1's: see
        :data:`~refmeter.gateware.meter.CHANNELS_PER_PHASE`), one set per sample
        period; the models are always ready.
    seal_open : Signal, in
        The meter's seal input.
    panel : Signal(len(PANEL_INPUTS)), in
        What a person works at the meter: a bit per input of :data:`PANEL_INPUTS`.
    from_meter : stream out
        Bytes the meter's UART transmitted.
    """

    #: Bytes buffered each way: the simulator loop may look in only every few cycles.
    FIFO_DEPTH = 64

    def __init__(self, meter: Meter):
        if "utc_preset" not in meter.signature.members:
            raise ValueError("A simulated meter needs Meter(time_preset=True)")
        self.meter = meter
        self._devices = adc_devices(meter.phases)
        super().__init__({
            "to_meter": In(stream.Signature(8)),
            "from_meter": Out(stream.Signature(8)),
            "utc_preset": In(stream.Signature(32)),
            "adc_codes": In(stream.Signature(sample_layout(self._devices))),
            "seal_open": In(1),
            "panel": In(len(PANEL_INPUTS)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.meter = meter = self.meter
        m.submodules.outbox = outbox = fifo.SyncFIFOBuffered(width=8, depth=self.FIFO_DEPTH)
        m.submodules.host_tx = host_tx = UARTTransmitter(divisor=meter.divisor)
        m.submodules.host_rx = host_rx = UARTReceiver(divisor=meter.divisor)
        m.submodules.inbox = inbox = fifo.SyncFIFOBuffered(width=8, depth=self.FIFO_DEPTH)

        wiring.connect(m, wiring.flipped(self.to_meter), outbox.w_stream)
        wiring.connect(m, outbox.r_stream, host_tx.data)
        m.d.comb += [meter.uart_rx.eq(host_tx.tx), host_rx.rx.eq(meter.uart_tx)]
        wiring.connect(m, host_rx.data, inbox.w_stream)
        wiring.connect(m, inbox.r_stream, wiring.flipped(self.from_meter))
        wiring.connect(m, wiring.flipped(self.utc_preset), meter.utc_preset)

        # The ADCs share SPI and convert together; device 0's DRDY paces the meter.
        m.d.comb += self.adc_codes.ready.eq(1)
        for device in range(self._devices):
            m.submodules[f"adc{device}"] = adc = ADS131M04Model(clk_freq=meter.clk_freq)
            m.d.comb += [
                adc.codes.valid.eq(self.adc_codes.valid),
                adc.codes.payload.eq(self.adc_codes.payload.as_value().word_select(
                    device, SAMPLE_LAYOUT.size)),
                adc.sclk.eq(meter.adc_sclk),
                adc.cs_n.eq(meter.adc_cs_n),
                adc.copi.eq(meter.adc_copi),
                meter.adc_cipo[device].eq(adc.cipo),
            ]
            if device == 0:
                m.d.comb += meter.adc_drdy_n.eq(adc.drdy_n)
        m.d.comb += meter.seal_open.eq(self.seal_open)
        for bit, name in enumerate(PANEL_INPUTS):
            m.d.comb += getattr(meter, name).eq(self.panel[bit])
        for relay in ("main_relay", "priority_relay"):
            m.submodules[relay] = model = LatchingRelayModel(closed=True)
            wiring.connect(m, getattr(meter, relay), model.relay)
        return m
