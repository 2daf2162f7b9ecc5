"""The security unit: key slots, authenticated register writes and sealed readings.

Everything that must hold even when the host is hostile happens here, inside the
seal; the host only forwards bytes (docs/security.md):

* **Key slots.** One AES-128 key per :class:`Authority`, in block RAM that only the
  AES-GCM engine's key port reads. A slot is written through its ``key_*``
  register, in provisioning (seal open) or by a command under the slot's own key,
  and ``zeroise_keys`` erases them all. Until a slot is written after power-up or
  reset it verifies nothing.
* **Authenticated register writes.** The host writes a command's header, its
  encrypted value and its tag (:mod:`.frames`); writing the tag runs it. The unit
  refuses a stale or repeated invocation counter before it runs the engine,
  verifies the tag, and only then writes the decrypted value to the register bank
  as an authenticated write from the slot's authority: the bank's guards decide
  whether that authority may write that register. Every verified command moves
  the slot's counter on, even one the bank refuses, so it can never be replayed.
* **Sealed readings.** ``seal_request`` seals a load-profile record or a snapshot
  of the clock and energy totals: a GMAC under the reading key with a nonce of the
  meter's system title and a seal counter that never repeats.

The unit does one thing at a time. While it is busy it drops writes to the
command registers (a tag written then counts as a refused command), so nobody can
change a command between its check and its write.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import enum, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..aes.gcm import AesGcm
from ..hostlink.protocol import MAX_PAYLOAD, Status
from ..registers import Access, Field, Guard, Register, RegisterBus, register_ports
from .authority import Authority
from .frames import (COMMAND_AAD_BYTES, COMMAND_CONTROL, SEAL_AAD_BYTES, SEAL_CONTROL,
                     SEALED_BYTES, TAG_BYTES, VALUE_BYTES, SealKind, system_title)

__all__ = ["SecurityUnit", "SecurityResult"]

KEY_BITS = 128


class SecurityResult(enum.IntEnum, shape=4):
    """What became of the last command or seal request (``security_status.result``)."""

    NONE = 0            #: nothing yet since power-up
    ACCEPTED = 1        #: verified and written
    BAD_TAG = 2         #: the tag did not verify: nothing written, the counter unchanged
    REPLAYED = 3        #: the counter was not above the slot's last one
    NO_KEY = 4          #: the slot has no key since power-up, reset or zeroisation
    BAD_AUTHORITY = 5   #: no such slot
    OWN_TITLE = 6       #: the sender used the meter's own system title (its seals' nonces)
    REFUSED = 7         #: verified, and the bank refused the write (``bus_status`` says why)
    BUSY = 8            #: the tag came while the unit was busy: dropped
    SEALED = 9          #: a reading was sealed
    EXHAUSTED = 10      #: the seal counter is at its end: no nonce left for the reading key
    UNKNOWN_KIND = 11   #: a seal request of no :class:`SealKind`
    NO_ENGINE = 15      #: this bitstream has no security unit (``Meter(security=False)``)


def _key_register(authority: Authority) -> Register:
    return Register.number(
        f"key_{authority.slot_name}", Access.WO, KEY_BITS,
        f"AES-128 key of the {authority.slot_name} slot; written with the seal open or by a "
        f"command under the slot's own key, never readable",
        guard=Guard.PROVISIONING, authorities={authority})


def _counter_register(authority: Authority) -> Register:
    return Register.number(
        f"invocation_counter_{authority.slot_name}", Access.RO, 32,
        f"last invocation counter accepted from the {authority.slot_name} slot; the next "
        f"command must carry a larger one (0 after power-up)")


class SecurityUnit(wiring.Component):
    """Key slots, authenticated register writes and sealed readings (see the module
    documentation).

    Parameters
    ----------
    meter_id : int
        The meter's EUI-64, from which its system title comes.
    data_width : int
        The register bus's data width.
    **gcm
        :class:`AesGcm` engine parameters (default: the column datapath with RAM
        S-boxes and GHASH digit 4, the smallest pair that keeps pace).

    Ports
    -----
    bus : Out(RegisterBus)
        Authenticated writes, to the bank through a :class:`RegisterBusArbiter`.
    profile_record : In(96)
        The load-profile record the profile shows (sealed as :attr:`SealKind.PROFILE_RECORD`).
    utc_seconds, import_wh, export_wh : In(32)
        The clock and energy totals (sealed as :attr:`SealKind.SNAPSHOT`).
    """

    REGISTERS = (
        Register.number("system_title", Access.RO, 64,
                        "the meter's DLMS system title: nonce prefix of its seals"),
        *(_key_register(authority) for authority in Authority),
        Register.number("zeroise_keys", Access.WO, 8,
                        "any value erases every key slot (seal open, or any slot's command)",
                        guard=Guard.PROVISIONING, authorities=set(Authority)),
        Register("command_header", Access.WO, (
            Field("invocation_counter", 32, "the sender's invocation counter for this slot"),
            Field("address", 16, "register the command writes"),
            Field("length", 8, "bytes of that register's value"),
            Field("authority", 8, "slot whose key verifies the command"),
            Field("system_title", 64, "the sender's system title (nonce prefix)"),
        ), "an authenticated command's header (docs/security.md)"),
        Register.number("command_value", Access.WO, 8 * VALUE_BYTES,
                        "the command's encrypted value (16 bytes of ciphertext)"),
        Register.number("command_tag", Access.WO, 8 * TAG_BYTES,
                        "the command's tag; writing it runs the command"),
        Register("security_status", Access.RO, (
            Field("busy", 1, "1 while a command, seal or zeroisation runs"),
            Field("provisioned", len(Authority), "bit n: slot n holds a key"),
            Field("result", 4, "what became of the last command or seal (SecurityResult)"),
            Field("bus_status", 8, "the bank's answer to the last verified command's write"),
            Field("commands_accepted", 16, "commands verified and written (wraps)"),
            Field("commands_refused", 16, "commands refused for any reason (wraps)"),
        ), "the security unit's state and counts"),
        *(_counter_register(authority) for authority in Authority),
        Register.number("seal_request", Access.WO, 8,
                        "seal a reading: 1 the selected load-profile record, 2 a snapshot"),
        Register.number("sealed_reading", Access.RO, 8 * SEALED_BYTES,
                        "the 12 bytes the last seal covers"),
        Register("reading_seal", Access.RO, (
            Field("counter", 32, "seals since power-up: this seal's nonce counter"),
            Field("tag", 8 * TAG_BYTES, "GMAC of the sealed reading under the reading key"),
        ), "the last seal"),
    )

    def __init__(self, *, meter_id: int, data_width: int, **gcm):
        self._system_title = system_title(meter_id)
        self._gcm = AesGcm(tag_bytes=TAG_BYTES, **({"datapath": "column", "sbox": "ram",
                                                    "digit": 4} | gcm))
        super().__init__({
            "bus": Out(RegisterBus(data_width=data_width)),
            "profile_record": In(8 * SEALED_BYTES),
            "utc_seconds": In(32),
            "import_wh": In(32),
            "export_wh": In(32),
            **register_ports(self.REGISTERS),
        })

    @property
    def registers(self) -> tuple[Register, ...]:
        return self.REGISTERS

    def elaborate(self, platform):
        m = Module()
        m.submodules.gcm = gcm = self._gcm
        status = self.security_status
        title = int.from_bytes(self._system_title, "big")

        # --- Key slots --------------------------------------------------------------
        m.submodules.keys = keys = Memory(shape=KEY_BITS, depth=len(Authority), init=[])
        key_write = keys.write_port()
        key_read = keys.read_port(transparent_for=())
        for authority in Authority:
            port = getattr(self, f"key_{authority.slot_name}")
            with m.If(port.written):
                m.d.comb += [key_write.addr.eq(authority), key_write.data.eq(port.data.value),
                             key_write.en.eq(1)]
                m.d.sync += status.provisioned[authority].eq(1)
        m.d.comb += gcm.key.eq(key_read.data)

        # --- The command, taken only while idle ----------------------------------------
        busy = status.busy
        header = Signal.like(self.command_header.data)
        value = Signal(8 * VALUE_BYTES)
        tag = Signal(8 * TAG_BYTES)
        command_pending = Signal()
        with m.If(~busy):
            with m.If(self.command_header.written):
                m.d.sync += header.eq(self.command_header.data)
            with m.If(self.command_value.written):
                m.d.sync += value.eq(self.command_value.data.value)
            with m.If(self.command_tag.written):
                m.d.sync += [tag.eq(self.command_tag.data.value), command_pending.eq(1)]

        counters = Array(getattr(self, f"invocation_counter_{authority.slot_name}").value
                         for authority in Authority)
        authority = header.authority
        known_authority = authority < len(Authority)
        slot_counter = counters[authority[:3]]

        seal_kind = Signal(8)
        seal_pending = Signal()
        with m.If(self.seal_request.written & ~seal_pending):
            m.d.sync += [seal_kind.eq(self.seal_request.data.value), seal_pending.eq(1)]
        zeroise_pending = Signal()
        with m.If(self.zeroise_keys.written):
            # Nothing new starts under a key that is about to go.
            m.d.sync += [zeroise_pending.eq(1), status.provisioned.eq(0)]

        sealing = Signal()
        seal_counter = self.reading_seal.counter
        sealed = self.sealed_reading.value
        m.d.comb += key_read.addr.eq(Mux(sealing, Authority.READING, authority[:3]))

        def finish(result, *, refused: bool):
            m.d.sync += [status.result.eq(result), busy.eq(0)]
            if refused:
                m.d.sync += status.commands_refused.eq(status.commands_refused + 1)

        with m.If(self.command_tag.written & busy):
            m.d.sync += [status.result.eq(SecurityResult.BUSY),
                         status.commands_refused.eq(status.commands_refused + 1)]

        # --- AES-GCM inputs: one AAD block, then (a command) the value and the tag ----
        element = Signal(range(4))          # elements given to the engine so far
        header_taken = Signal()
        # The AAD of frames.py, left-aligned in a block.
        command_aad_block = Cat(Const(0, 8 * (16 - COMMAND_AAD_BYTES)), header.length,
                                header.address, authority, Const(title, 64),
                                Const(COMMAND_CONTROL, 8))
        seal_aad_block = Cat(Const(0, 8 * (16 - SEAL_AAD_BYTES)), sealed, seal_kind,
                             Const(SEAL_CONTROL, 8))
        assert len(command_aad_block) == len(seal_aad_block) == 128
        with m.If(sealing):
            m.d.comb += [
                gcm.message.payload.iv.eq(Cat((seal_counter + 1)[:32], Const(title, 64))),
                gcm.message.payload.aad_bytes.eq(SEAL_AAD_BYTES),
                gcm.data.payload.data.eq(seal_aad_block),
                gcm.data.payload.last.eq(1),
                gcm.data.valid.eq(element == 0),
            ]
        with m.Else():
            m.d.comb += [
                gcm.message.payload.iv.eq(Cat(header.invocation_counter, header.system_title)),
                gcm.message.payload.aad_bytes.eq(COMMAND_AAD_BYTES),
                gcm.message.payload.payload_bytes.eq(VALUE_BYTES),
                gcm.message.payload.decrypt.eq(1),
                gcm.message.payload.verify.eq(1),
                gcm.data.payload.data.eq(Array([command_aad_block, value,
                                                Cat(Const(0, 128 - len(tag)), tag)])[element]),
                gcm.data.payload.last.eq(element == 2),
                gcm.data.valid.eq(element <= 2),
            ]
        plaintext = Signal(8 * VALUE_BYTES)
        m.d.comb += [gcm.output.ready.eq(1), gcm.result.ready.eq(1)]
        with m.If(gcm.output.valid):
            m.d.sync += plaintext.eq(gcm.output.payload)

        # --- Sequence ------------------------------------------------------------------
        zeroised = Signal(range(len(Authority)))
        with m.FSM():
            with m.State("IDLE"):
                with m.If(zeroise_pending):
                    m.d.sync += [busy.eq(1), zeroised.eq(0)]
                    m.next = "ZEROISE"
                with m.Elif(command_pending):
                    m.d.sync += command_pending.eq(0)
                    with m.If(~known_authority):
                        finish(SecurityResult.BAD_AUTHORITY, refused=True)
                    with m.Elif(~status.provisioned.bit_select(authority[:3], 1)):
                        finish(SecurityResult.NO_KEY, refused=True)
                    with m.Elif(header.system_title == title):
                        finish(SecurityResult.OWN_TITLE, refused=True)
                    with m.Elif(header.invocation_counter <= slot_counter):
                        finish(SecurityResult.REPLAYED, refused=True)
                    with m.Else():
                        m.d.sync += [busy.eq(1), element.eq(0), header_taken.eq(0)]
                        m.next = "KEY"
                with m.Elif(seal_pending):
                    m.d.sync += seal_pending.eq(0)
                    with m.If((seal_kind != SealKind.PROFILE_RECORD) &
                              (seal_kind != SealKind.SNAPSHOT)):
                        finish(SecurityResult.UNKNOWN_KIND, refused=False)
                    with m.Elif(~status.provisioned[Authority.READING]):
                        finish(SecurityResult.NO_KEY, refused=False)
                    with m.Elif(seal_counter == (1 << 32) - 1):
                        finish(SecurityResult.EXHAUSTED, refused=False)
                    with m.Else():
                        m.d.sync += [busy.eq(1), sealing.eq(1), element.eq(0), header_taken.eq(0),
                                     sealed.eq(Mux(seal_kind == SealKind.PROFILE_RECORD,
                                                   self.profile_record,
                                                   Cat(self.export_wh, self.import_wh,
                                                       self.utc_seconds)))]
                        m.next = "KEY"

            with m.State("ZEROISE"):
                m.d.comb += [key_write.addr.eq(zeroised), key_write.data.eq(0),
                             key_write.en.eq(1)]
                m.d.sync += zeroised.eq(zeroised + 1)
                with m.If(zeroised == len(Authority) - 1):
                    m.d.sync += [zeroise_pending.eq(0), status.provisioned.eq(0), busy.eq(0)]
                    m.next = "IDLE"

            with m.State("KEY"):
                # The key's block RAM answers a cycle after its address settles.
                m.next = "MESSAGE"

            with m.State("MESSAGE"):
                m.d.comb += gcm.message.valid.eq(~header_taken)
                with m.If(gcm.message.ready):
                    m.d.sync += header_taken.eq(1)
                with m.If(gcm.data.valid & gcm.data.ready):
                    m.d.sync += element.eq(element + 1)
                with m.If(gcm.result.valid):
                    with m.If(sealing):
                        m.d.sync += [
                            self.reading_seal.tag.eq(gcm.result.payload.tag[-8 * TAG_BYTES:]),
                            seal_counter.eq(seal_counter + 1),
                            sealing.eq(0),
                        ]
                        finish(SecurityResult.SEALED, refused=False)
                        m.next = "IDLE"
                    with m.Elif(gcm.result.payload.tag_ok & ~gcm.result.payload.malformed):
                        m.next = "WRITE"
                    with m.Else():
                        finish(SecurityResult.BAD_TAG, refused=True)
                        m.next = "IDLE"

            with m.State("WRITE"):
                # Verified: the counter moves on whatever the bank answers.
                m.d.sync += slot_counter.eq(header.invocation_counter)
                with m.If(header.length > MAX_PAYLOAD):
                    m.d.sync += status.bus_status.eq(Status.BAD_LENGTH)
                    finish(SecurityResult.REFUSED, refused=True)
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += [
                        self.bus.address.eq(header.address),
                        self.bus.write.eq(1),
                        self.bus.length.eq(header.length),
                        self.bus.w_data.eq(plaintext),
                        self.bus.authenticated.eq(1),
                        self.bus.authority.eq(authority),
                        self.bus.strobe.eq(1),
                    ]
                    with m.If(self.bus.ack):
                        m.d.sync += status.bus_status.eq(self.bus.status)
                        with m.If(self.bus.status == Status.OK):
                            m.d.sync += status.commands_accepted.eq(status.commands_accepted + 1)
                            finish(SecurityResult.ACCEPTED, refused=False)
                        with m.Else():
                            finish(SecurityResult.REFUSED, refused=True)
                        m.next = "IDLE"

        m.d.comb += self.system_title.value.eq(title)
        return m
