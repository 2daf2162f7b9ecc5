"""Frame bridge: parses request frames from a byte stream, performs them on a
:class:`~refmeter.gateware.registers.RegisterBus` and streams back responses.

How bad input is handled (also in ``docs/protocol.md``):

* bytes outside a frame (anything while hunting for ``SOF``) are skipped;
* ``LEN`` above ``MAX_PAYLOAD`` is answered at once with ``BAD_LENGTH`` (command
  and address 0, since they were not received) and the bridge hunts for ``SOF``;
* a frame whose CRC does not match is answered with ``BAD_CRC`` and not performed;
* an unknown command is answered with ``BAD_COMMAND``; the register bank answers
  address, access and length errors;
* a frame cut short (no byte for ``frame_timeout`` cycles) is dropped without an
  answer, and the bridge hunts for ``SOF`` again.

None of these reach the register bus as a strobe, so they change no register.

Local writes
------------
The security unit writes the registers a verified command carries through the
bridge too (``local``), so that the bus has one initiator and one payload
register however wide it is. Between frames the bridge takes a local write before
a host's next frame (whose bytes wait in the request FIFO): it shifts the value's
bytes into its payload register as it would a frame's, makes the write with
``authenticated`` set and the command's authority, and answers the unit, not the
host. Only a local write raises ``authenticated``: nothing a host sends can.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.crc import Processor
from amaranth.lib.wiring import In, Out

from ..registers import RegisterBus, RegisterMap, RegisterStore
from ..security.authority import Authority
from .protocol import SOF, MAX_PAYLOAD, CRC, Command, Status

__all__ = ["FrameBridge", "LocalWrite", "LOCAL_WRITE_LAYOUT"]

#: Bits of a lane of the bus's ``r_data``.
_LANE = RegisterStore.WORD_WIDTH

#: A local write: the register, its value's length in bytes and the authority whose
#: key verified the command that carries it.
LOCAL_WRITE_LAYOUT = data.StructLayout({
    "address": RegisterMap.ADDRESS_WIDTH,
    "length": range(MAX_PAYLOAD + 1),
    "authority": range(len(Authority)),
})


class LocalWrite(wiring.Signature):
    """An authenticated write the security unit asks the bridge to make: the
    ``request``, then its value's ``length`` bytes on ``data``, most significant
    first, then the bank's answer on ``status``, which the unit takes in the cycle it
    comes."""

    def __init__(self):
        super().__init__({
            "request": Out(stream.Signature(LOCAL_WRITE_LAYOUT)),
            "data": Out(stream.Signature(8)),
            "status": In(stream.Signature(Status)),
        })


class FrameBridge(wiring.Component):
    """Request/response frames on byte streams to register bus accesses.

    Parameters
    ----------
    data_width : int
        Register bus data width, bits (the widest register).
    frame_timeout : int
        Clock cycles without a byte after which a partly received frame is dropped.

    Attributes
    ----------
    rx : stream in
        Request bytes (for example from a UART receiver through a FIFO).
    tx : stream out
        Response bytes.
    bus : RegisterBus out
        The register bus this bridge drives.
    local : LocalWrite in
        Authenticated writes from the security unit (see the module documentation).
    rejected : Signal out
        Pulses once for every error response sent.
    """

    def __init__(self, *, data_width: int, frame_timeout: int):
        if data_width % 8 or not 8 <= data_width <= MAX_PAYLOAD * 8:
            raise ValueError(f"Bus data width must be a multiple of 8 up to {MAX_PAYLOAD * 8}, "
                             f"not {data_width}")
        if frame_timeout < 1:
            raise ValueError(f"Frame timeout must be at least one cycle, not {frame_timeout}")
        self._data_width = data_width
        self._frame_timeout = frame_timeout
        super().__init__({
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "bus": Out(RegisterBus(data_width=data_width)),
            "local": In(LocalWrite()),
            "rejected": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        data_bytes = self._data_width // 8

        m.submodules.crc = crc = Processor(CRC(data_width=8))

        length = Signal(range(MAX_PAYLOAD + 1))
        command = Signal(8)
        status = Signal(Status)
        # The payload received (right-aligned), then the value read, sent most significant
        # byte first: a write's payload is used up when the value read replaces it.
        payload = Signal(self._data_width)
        byte_count = Signal(range(MAX_PAYLOAD + 1))
        response_length = Signal(range(data_bytes + 1))
        idle_cycles = Signal(range(self._frame_timeout + 1))
        authenticated = Signal()    # the access is a local write
        authority = Signal.like(bus.authority)

        m.d.comb += [
            bus.length.eq(length),
            bus.w_data.eq(payload),
            bus.write.eq(command == Command.WRITE),
            bus.authenticated.eq(authenticated),
            bus.authority.eq(authority),
        ]
        m.d.sync += self.rejected.eq(0)

        def take_byte():
            """In a receiving state: take the next request byte into the CRC and return
            its valid flag; give up on the frame after ``frame_timeout`` idle cycles."""
            m.d.comb += [self.rx.ready.eq(1), crc.data.eq(self.rx.payload),
                         crc.valid.eq(self.rx.valid)]
            with m.If(self.rx.valid):
                m.d.sync += idle_cycles.eq(0)
            with m.Elif(idle_cycles == self._frame_timeout - 1):
                m.d.sync += idle_cycles.eq(0)
                m.next = "HUNT"
            with m.Else():
                m.d.sync += idle_cycles.eq(idle_cycles + 1)
            return self.rx.valid

        def receive(state, next_state, *, store=()):
            with m.State(state):
                with m.If(take_byte()):
                    m.d.sync += [target.eq(self.rx.payload) for target in store]
                    m.next = next_state

        def send(state, next_state, byte):
            """A state that sends one response byte and adds it to the CRC."""
            with m.State(state):
                m.d.comb += [self.tx.payload.eq(byte), self.tx.valid.eq(1)]
                with m.If(self.tx.ready):
                    m.d.comb += [crc.data.eq(byte), crc.valid.eq(1)]
                    m.next = next_state

        def respond(with_status):
            m.d.sync += status.eq(with_status)
            m.next = "SEND-SOF"

        with m.FSM():
            # Receiving.
            with m.State("HUNT"):
                local = self.local.request
                m.d.comb += [local.ready.eq(1), self.rx.ready.eq(~local.valid)]
                with m.If(local.valid):
                    m.d.sync += [command.eq(Command.WRITE), bus.address.eq(local.payload.address),
                                 length.eq(local.payload.length), payload.eq(0),
                                 byte_count.eq(0), authenticated.eq(1),
                                 authority.eq(local.payload.authority)]
                    m.next = "LOCAL-PAYLOAD"
                with m.Elif(self.rx.valid & (self.rx.payload == SOF)):
                    m.d.comb += crc.start.eq(1)
                    m.d.sync += [command.eq(0), bus.address.eq(0), payload.eq(0),
                                 byte_count.eq(0), response_length.eq(0), idle_cycles.eq(0)]
                    m.next = "LENGTH"
            with m.State("LENGTH"):
                with m.If(take_byte()):
                    with m.If(self.rx.payload > MAX_PAYLOAD):
                        m.d.sync += length.eq(0)
                        respond(Status.BAD_LENGTH)
                    with m.Else():
                        m.d.sync += length.eq(self.rx.payload)
                        m.next = "COMMAND"
            receive("COMMAND", "ADDRESS-HIGH", store=[command])
            receive("ADDRESS-HIGH", "ADDRESS-LOW", store=[bus.address[8:]])
            receive("ADDRESS-LOW", "PAYLOAD", store=[bus.address[:8]])
            with m.State("PAYLOAD"):
                with m.If(byte_count == length):
                    m.next = "CRC-HIGH"
                with m.Else():
                    with m.If(take_byte()):
                        # Bytes beyond the bus width are checksummed but not kept;
                        # the bank refuses such a length anyway.
                        m.d.sync += [payload.eq((payload << 8) | self.rx.payload),
                                     byte_count.eq(byte_count + 1)]
            receive("CRC-HIGH", "CRC-LOW")
            receive("CRC-LOW", "EXECUTE")

            # Performing.
            with m.State("EXECUTE"):
                with m.If(~crc.match_detected):
                    respond(Status.BAD_CRC)
                with m.Elif((command != Command.READ) & (command != Command.WRITE)):
                    respond(Status.BAD_COMMAND)
                with m.Else():
                    # The access holds (this state) until the target acknowledges it;
                    # the value read arrives in lanes meanwhile (RegisterBus). A read
                    # carries no payload, so the lanes not marked stay 0.
                    m.d.comb += bus.strobe.eq(1)
                    for lane, marked in enumerate(bus.r_lanes):
                        bits = slice(lane * _LANE, (lane + 1) * _LANE)
                        with m.If(marked):
                            m.d.sync += payload[bits].eq(bus.r_data[bits])
                    with m.If(bus.ack):
                        m.d.sync += response_length.eq(bus.r_length)
                        respond(bus.status)

            # A local write: its value, then the access, answered to the unit alone.
            with m.State("LOCAL-PAYLOAD"):
                m.d.comb += self.local.data.ready.eq(byte_count != length)
                with m.If(self.local.data.valid & self.local.data.ready):
                    m.d.sync += [payload.eq((payload << 8) | self.local.data.payload),
                                 byte_count.eq(byte_count + 1)]
                with m.If(byte_count == length):
                    m.next = "LOCAL-EXECUTE"
            with m.State("LOCAL-EXECUTE"):
                m.d.comb += [bus.strobe.eq(1), self.local.status.payload.eq(bus.status)]
                with m.If(bus.ack):
                    m.d.comb += self.local.status.valid.eq(1)
                    m.d.sync += [authenticated.eq(0), authority.eq(0)]
                    m.next = "HUNT"

            # Answering.
            with m.State("SEND-SOF"):
                m.d.comb += [self.tx.payload.eq(SOF), self.tx.valid.eq(1), crc.start.eq(1)]
                with m.If(self.tx.ready):
                    m.next = "SEND-LENGTH"
            send("SEND-LENGTH", "SEND-COMMAND", response_length)
            send("SEND-COMMAND", "SEND-STATUS", command)
            send("SEND-STATUS", "SEND-ADDRESS-HIGH", status)
            send("SEND-ADDRESS-HIGH", "SEND-ADDRESS-LOW", bus.address[8:])
            send("SEND-ADDRESS-LOW", "SEND-PAYLOAD", bus.address[:8])
            with m.State("SEND-PAYLOAD"):
                with m.If(response_length == 0):
                    m.next = "SEND-CRC-HIGH"
                with m.Else():
                    byte_index = Signal(range(data_bytes))
                    m.d.comb += byte_index.eq(response_length - 1)
                    byte = payload.word_select(byte_index, 8)
                    m.d.comb += [self.tx.payload.eq(byte), self.tx.valid.eq(1)]
                    with m.If(self.tx.ready):
                        m.d.comb += [crc.data.eq(byte), crc.valid.eq(1)]
                        m.d.sync += response_length.eq(response_length - 1)
            # The CRC bytes themselves are not checksummed, so no `send` here.
            with m.State("SEND-CRC-HIGH"):
                m.d.comb += [self.tx.payload.eq(crc.crc[8:]), self.tx.valid.eq(1)]
                with m.If(self.tx.ready):
                    m.next = "SEND-CRC-LOW"
            with m.State("SEND-CRC-LOW"):
                m.d.comb += [self.tx.payload.eq(crc.crc[:8]), self.tx.valid.eq(1)]
                with m.If(self.tx.ready):
                    m.d.sync += self.rejected.eq(status != Status.OK)
                    m.next = "HUNT"
        return m
