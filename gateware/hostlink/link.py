"""The meter's end of the host link: UART, request FIFO and frame bridge."""

from amaranth.hdl import Module
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from ..registers import Access, Field, Register, RegisterBus
from .bridge import FrameBridge, LocalWrite
from .uart import UARTReceiver, UARTTransmitter

__all__ = ["HostLink"]


class HostLink(wiring.Component):
    """The meter's end of the serial link to the host.

    Requests queue in a FIFO, so a host may send the next frame while the current
    response is still going out.

    Parameters
    ----------
    data_width : int
        Register bus data width, bits.
    divisor : int
        UART bit time, clock cycles.
    frame_timeout : int
        Idle clock cycles after which a partly received frame is dropped.

    ``local`` takes the security unit's authenticated writes
    (:class:`~refmeter.gateware.hostlink.bridge.FrameBridge`).
    """

    REGISTERS = (
        Register("link_status", Access.RO, (
            Field("rejected_frames", 16, "error responses sent (wraps)"),
            Field("framing_errors", 8, "UART bytes with a bad stop bit (wraps)"),
            Field("overruns", 8, "UART bytes lost to a full request FIFO (wraps)"),
        ), "host-link error counters, for telling a noisy line from a bad host"),
    )

    #: Request bytes buffered: more than one largest frame.
    FIFO_DEPTH = 32

    def __init__(self, *, data_width: int, divisor: int, frame_timeout: int):
        if frame_timeout <= 10 * divisor:
            raise ValueError(f"Frame timeout of {frame_timeout} cycles is not longer than one "
                             f"UART byte ({10 * divisor} cycles): every frame would be dropped")
        self._data_width = data_width
        self._divisor = divisor
        self._frame_timeout = frame_timeout
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "bus": Out(RegisterBus(data_width=data_width)),
            "local": In(LocalWrite()),
            "rejected_frames": Out(16),
            "framing_errors": Out(8),
            "overruns": Out(8),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.receiver = receiver = UARTReceiver(divisor=self._divisor)
        m.submodules.requests = requests = fifo.SyncFIFOBuffered(width=8, depth=self.FIFO_DEPTH)
        m.submodules.bridge = bridge = FrameBridge(data_width=self._data_width,
                                                   frame_timeout=self._frame_timeout)
        m.submodules.transmitter = transmitter = UARTTransmitter(divisor=self._divisor)

        m.d.comb += [receiver.rx.eq(self.rx), self.tx.eq(transmitter.tx)]
        wiring.connect(m, receiver.data, requests.w_stream)
        wiring.connect(m, requests.r_stream, bridge.rx)
        wiring.connect(m, bridge.tx, transmitter.data)
        wiring.connect(m, bridge.bus, wiring.flipped(self.bus))
        wiring.connect(m, wiring.flipped(self.local), bridge.local)

        with m.If(bridge.rejected):
            m.d.sync += self.rejected_frames.eq(self.rejected_frames + 1)
        with m.If(receiver.framing_error):
            m.d.sync += self.framing_errors.eq(self.framing_errors + 1)
        with m.If(receiver.overrun):
            m.d.sync += self.overruns.eq(self.overruns + 1)
        return m
