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
  verifies the tag, and only then has the host-link bridge write the decrypted value
  to the register bank as an authenticated write from the slot's authority
  (:class:`~refmeter.gateware.hostlink.bridge.LocalWrite`): the bank's guards
  decide whether that authority may write that register. Every verified command
  moves the slot's counter on, even one the bank refuses, so it can never be
  replayed.
* **Sealed readings.** ``seal_request`` seals a load-profile record or a snapshot
  of the clock and energy totals: a GMAC under the reading key with a nonce of the
  meter's system title and a seal counter that never repeats.

The unit does one thing at a time. While it is busy it drops writes to the
command registers (a tag written then counts as a refused command), so nobody can
change a command between its check and its write.

Built for the smallest FPGA the meter runs on: every wide value lives in block
RAM, not flip-flops. Commands and seals run through the byte-serial
:class:`~refmeter.gateware.aes.serial.SerialAesGcm`; ``wo`` values are copied into
RAM a word at a time while the bank holds the write
(:class:`~refmeter.gateware.registers.WriteOnlyPort`); the ``ro`` counters and
seal are a :class:`~refmeter.gateware.registers.RegisterStore` in the same RAM,
updated by copying a staged value a word a cycle, so a host never reads one torn.

The working RAM, in bytes (byte ``b`` is in word ``b // 2``, the low byte when
``b`` is even); a value of several bytes is stored least significant byte first,
so the bank reads the words of a stored register least significant first:

==========  =====================================================================
bytes       what
==========  =====================================================================
0-19        ``invocation_counter_*``, 4 bytes a slot (store)
20-47       ``sealed_reading`` then ``reading_seal``: counter, tag (store)
48-63       the command header, as ``command_header`` lays it out
64-79       the command's ciphertext
80-91       the command's tag
96-111      the decrypted value
112-139     the next ``sealed_reading`` and ``reading_seal``, staged
140         the kind of reading being sealed
==========  =====================================================================
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, enum, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..aes.serial import SerialAesGcm
from ..hostlink.bridge import LocalWrite
from ..hostlink.protocol import MAX_PAYLOAD, Status
from ..registers import Access, Field, Guard, Register, RegisterStore, register_ports
from .authority import Authority
from .frames import (COMMAND_AAD_BYTES, COMMAND_CONTROL, SEAL_AAD_BYTES, SEAL_CONTROL,
                     SEALED_BYTES, TAG_BYTES, VALUE_BYTES, SealKind, system_title)

__all__ = ["SecurityUnit", "SecurityResult", "COMMAND_ORIGIN"]

KEY_BITS = 128
_WORD = RegisterStore.WORD_WIDTH
_KEY_WORDS = KEY_BITS // _WORD

#: The two registers whose field layout the unit's RAM holds byte for byte.
_COMMAND_HEADER = Register("command_header", Access.WO, (
    Field("invocation_counter", 32, "the sender's invocation counter for this slot"),
    Field("address", 16, "register the command writes"),
    Field("length", 8, "bytes of that register's value"),
    Field("authority", 8, "slot whose key verifies the command"),
    Field("system_title", 64, "the sender's system title (nonce prefix)"),
), "an authenticated command's header (docs/security.md)")
_READING_SEAL = Register("reading_seal", Access.RO, (
    Field("counter", 32, "seals since power-up: this seal's nonce counter"),
    Field("tag", 8 * TAG_BYTES, "GMAC of the sealed reading under the reading key"),
), "the last seal")


#: Who a command says it comes from (:attr:`SecurityUnit.origin`).
COMMAND_ORIGIN = data.StructLayout({
    "address": _COMMAND_HEADER.layout["address"].shape,
    "authority": _COMMAND_HEADER.layout["authority"].shape,
    "counter": _COMMAND_HEADER.layout["invocation_counter"].shape,
})


def _field_byte(register: Register, name: str) -> int:
    """The byte of ``register``'s value, least significant first, where field
    ``name`` starts."""
    offset = next(offset for field, offset in register.field_offsets() if field.name == name)
    assert offset % 8 == 0
    return offset // 8


# Byte addresses in the working RAM (see the module documentation).
_COUNTERS = 0
_SEALED = 20
_SEAL = _SEALED + SEALED_BYTES      # reading_seal
_SEAL_COUNTER = _SEAL + _field_byte(_READING_SEAL, "counter")
_SEAL_TAG = _SEAL + _field_byte(_READING_SEAL, "tag")
_HEADER = 48
_CIPHERTEXT = 64
_TAG = 80
_PLAINTEXT = 96
_STAGED = 112                       # the staged copy of bytes 20-47
_STAGING_OFFSET = _STAGED - _SEALED
_KIND = 140
_RAM_WORDS = 128
_PUBLISHED_WORDS = (_SEAL + _READING_SEAL.size - _SEALED) // 2

# The command header's fields in RAM.
_HEADER_COUNTER = _HEADER + _field_byte(_COMMAND_HEADER, "invocation_counter")    # 4 bytes
_HEADER_ADDRESS = _HEADER + _field_byte(_COMMAND_HEADER, "address")               # 2
_HEADER_LENGTH = _HEADER + _field_byte(_COMMAND_HEADER, "length")
_HEADER_AUTHORITY = _HEADER + _field_byte(_COMMAND_HEADER, "authority")
_HEADER_TITLE = _HEADER + _field_byte(_COMMAND_HEADER, "system_title")            # 8


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


def _be(top: int, count: int) -> list[int]:
    """Byte addresses of a value whose most significant byte is at ``top``, in the
    order AES-GCM takes its bytes: most significant first."""
    return [top - index for index in range(count)]


class _Program:
    """The bytes the engine takes for a command or a seal: each a byte of the working
    RAM or a constant, in a ROM of entries (``CONSTANT`` bit, then the address or
    the value)."""

    CONSTANT = 1 << 8

    def __init__(self, title: bytes):
        def constants(data: bytes) -> list[int]:
            return [self.CONSTANT | byte for byte in data]

        # IV (sender's title, counter), AAD (frames.command_aad), ciphertext, tag.
        command = (_be(_HEADER_TITLE + 7, 8) + _be(_HEADER_COUNTER + 3, 4)
                   + constants(bytes([COMMAND_CONTROL]) + title)
                   + [_HEADER_AUTHORITY] + _be(_HEADER_ADDRESS + 1, 2) + [_HEADER_LENGTH]
                   + _be(_CIPHERTEXT + VALUE_BYTES - 1, VALUE_BYTES)
                   + _be(_TAG + TAG_BYTES - 1, TAG_BYTES))
        # IV (the meter's title, the staged seal counter), AAD (frames.seal_aad).
        staged = _STAGING_OFFSET
        seal = (constants(title) + _be(staged + _SEAL_COUNTER + 3, 4)
                + constants(bytes([SEAL_CONTROL])) + [_KIND]
                + _be(staged + _SEALED + SEALED_BYTES - 1, SEALED_BYTES))
        assert len(command) == 12 + COMMAND_AAD_BYTES + VALUE_BYTES + TAG_BYTES
        assert len(seal) == 12 + SEAL_AAD_BYTES
        self.command_start, self.seal_start = 0, len(command)
        self.entries = command + seal


class SecurityUnit(wiring.Component):
    """Key slots, authenticated register writes and sealed readings (see the module
    documentation).

    Parameters
    ----------
    meter_id : int
        The meter's EUI-64, from which its system title comes.

    Ports
    -----
    local : Out(LocalWrite)
        Authenticated writes, made by the host-link bridge.
    security_store : Out(RegisterStore signature)
        The bank's read port on the counters and the seal (:attr:`stores`).
    profile_record : In(96)
        The load-profile record the profile shows (sealed as :attr:`SealKind.PROFILE_RECORD`).
    utc_seconds, import_wh, export_wh : In(32)
        The clock and energy totals (sealed as :attr:`SealKind.SNAPSHOT`).
    origin : Out(:data:`COMMAND_ORIGIN`)
        The last command's header as sent: the register it writes, its slot and its
        invocation counter. Steady while the unit is busy with it, so a register
        that a verified command writes can tell who asked (the interlock's requests).
    rejected : Out(1)
        Pulses when a command fails verification (bad tag, replayed, no key, no such
        slot, the meter's own title): ``origin`` is then a claim nobody vouched for.
    """

    REGISTERS = (
        Register.number("system_title", Access.RO, 64,
                        "the meter's DLMS system title: nonce prefix of its seals"),
        *(_key_register(authority) for authority in Authority),
        Register.number("zeroise_keys", Access.WO, 8,
                        "any value erases every key slot (seal open, or any slot's command)",
                        guard=Guard.PROVISIONING, authorities=set(Authority)),
        _COMMAND_HEADER,
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
        _READING_SEAL,
    )

    #: The registers kept in the working RAM, and their word addresses there.
    STORE = RegisterStore(
        addresses={**{f"invocation_counter_{authority.slot_name}": (_COUNTERS + 4 * authority) // 2
                      for authority in Authority},
                   "sealed_reading": _SEALED // 2, "reading_seal": _SEAL // 2},
        address_width=(_RAM_WORDS - 1).bit_length())

    def __init__(self, *, meter_id: int):
        self._system_title = system_title(meter_id)
        self._engine = SerialAesGcm(tag_bytes=TAG_BYTES)
        self.stores = {"security_store": self.STORE}
        self.registers = tuple(register for register in self.REGISTERS
                               if register.name not in self.STORE.addresses)
        super().__init__({
            "local": Out(LocalWrite()),
            "security_store": Out(self.STORE.signature),
            "profile_record": In(8 * SEALED_BYTES),
            "utc_seconds": In(32),
            "import_wh": In(32),
            "export_wh": In(32),
            "origin": Out(COMMAND_ORIGIN),
            "rejected": Out(1),
            **register_ports(self.registers),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = engine = self._engine
        status = self.security_status
        busy = status.busy
        title = self._system_title

        # --- Memories ---------------------------------------------------------------
        m.submodules.keys = keys = Memory(shape=_WORD, depth=_KEY_WORDS * len(Authority), init=[])
        key_write = keys.write_port()
        key_read = keys.read_port(transparent_for=())
        m.submodules.ram = ram = Memory(shape=_WORD, depth=_RAM_WORDS, init=[])
        ram_write = ram.write_port(granularity=8)
        ram_read = ram.read_port(transparent_for=())
        # The bank's reads see a word in the cycle it is written (RegisterStore).
        store_read = ram.read_port(transparent_for=(ram_write,))
        m.d.comb += [store_read.addr.eq(self.security_store.addr),
                     store_read.en.eq(self.security_store.en),
                     self.security_store.data.eq(store_read.data)]
        program = _Program(title)
        m.submodules.program = rom = Memory(shape=9, depth=len(program.entries),
                                            init=program.entries)
        rom_read = rom.read_port(domain="comb")

        def write_word(address, value):
            m.d.comb += [ram_write.addr.eq(address), ram_write.data.eq(value),
                         ram_write.en.eq(0b11)]

        def write_byte(address, value):
            m.d.comb += [ram_write.addr.eq(address >> 1), ram_write.data.eq(Cat(value, value)),
                         ram_write.en.eq(Mux(address[0], 0b10, 0b01))]

        # The engine reads the selected slot's key a byte at a time, first byte first:
        # key byte i is RAM byte 15 - i of the slot.
        slot = Signal(range(len(Authority)))
        key_lane = Signal()
        m.d.comb += [key_read.addr.eq(slot * _KEY_WORDS + (~engine.key.addr[1:4])[:3]),
                     key_read.en.eq(engine.key.en),
                     engine.key.data.eq(Mux(key_lane, key_read.data[:8], key_read.data[8:]))]
        with m.If(engine.key.en):
            m.d.sync += key_lane.eq(engine.key.addr[0])

        # --- Intake: wo registers into RAM, a word a cycle, while the bank holds them -------
        word = Signal(range(_KEY_WORDS))
        zeroising = Signal()
        engine_running = Signal()

        def copy_in(port, words: int, store):
            """Copy ``port``'s value into RAM word by word; ``store(index, value)``
            writes word ``index``. The write completes with the last word."""
            m.d.comb += port.ready.eq(0)
            store(word, port.data.as_value().word_select(word, _WORD))
            with m.If(word == words - 1):
                m.d.comb += port.ready.eq(1)
                m.d.sync += word.eq(0)
            with m.Else():
                m.d.sync += word.eq(word + 1)

        for authority in Authority:
            port = getattr(self, f"key_{authority.slot_name}")
            # A key waits while the engine might read its slot, or zeroisation runs.
            with m.If(port.written & (engine_running | zeroising)):
                m.d.comb += port.ready.eq(0)
            with m.Elif(port.written):
                def store_key(index, value, authority=authority):
                    m.d.comb += [key_write.addr.eq(authority * _KEY_WORDS + index),
                                 key_write.data.eq(value), key_write.en.eq(1)]
                copy_in(port, _KEY_WORDS, store_key)
                with m.If(port.ready):
                    m.d.sync += status.provisioned[authority].eq(1)

        command_pending = Signal()
        intake = Signal()           # a command register is being copied in
        header = self.command_header.data
        address = self.origin.address
        authority = self.origin.authority
        length = Signal.like(header.length)
        own_title = Signal()
        for port, base, size in ((self.command_header, _HEADER, _COMMAND_HEADER.size),
                                 (self.command_value, _CIPHERTEXT, VALUE_BYTES),
                                 (self.command_tag, _TAG, TAG_BYTES)):
            with m.If(port.written & ~busy):
                m.d.comb += intake.eq(1)
                copy_in(port, size // 2, lambda index, value, base=base:
                        write_word(base // 2 + index, value))
        with m.If(self.command_header.written & ~busy):
            m.d.sync += [address.eq(header.address), length.eq(header.length),
                         authority.eq(header.authority),
                         self.origin.counter.eq(header.invocation_counter),
                         own_title.eq(header.system_title == int.from_bytes(title, "big"))]
        with m.If(self.command_tag.written & self.command_tag.ready):
            with m.If(busy):
                m.d.sync += [status.result.eq(SecurityResult.BUSY),
                             status.commands_refused.eq(status.commands_refused + 1)]
            with m.Else():
                m.d.sync += command_pending.eq(1)

        seal_kind = Signal(8)
        seal_pending = Signal()
        with m.If(self.seal_request.written & ~seal_pending):
            m.d.sync += [seal_kind.eq(self.seal_request.data.value), seal_pending.eq(1)]
        zeroise_pending = Signal()
        with m.If(self.zeroise_keys.written):
            # Nothing new starts under a key that is about to go.
            m.d.sync += [zeroise_pending.eq(1), status.provisioned.eq(0)]

        # --- The sequence's datapath ------------------------------------------------------
        # Copying words (publishing a staged value, a counter, the next seal counter):
        # word i is read in one cycle and written the next, so the writes are in
        # consecutive cycles, lowest first, as a RegisterStore asks. ``carry`` adds
        # one on the way (the seal counter) and is what overflows.
        copy_from = Signal(range(_RAM_WORDS))
        copy_to = Signal(range(_RAM_WORDS))
        copy_left = Signal(range(_PUBLISHED_WORDS + 1))
        copy_writing = Signal()
        carry = Signal()
        copied = Signal(_WORD + 1)
        m.d.comb += copied.eq(ram_read.data + carry)

        def start_copy(source: int, target, words: int, *, increment: bool = False):
            m.d.sync += [copy_from.eq(source), copy_to.eq(target), copy_left.eq(words),
                         copy_writing.eq(0), carry.eq(increment)]

        def run_copy():
            """One cycle of a copy; true in its last."""
            m.d.comb += ram_read.addr.eq(copy_from)
            m.d.sync += [copy_from.eq(copy_from + 1), copy_writing.eq(copy_left != 0)]
            with m.If(copy_left != 0):
                m.d.sync += copy_left.eq(copy_left - 1)
            with m.If(copy_writing):
                write_word(copy_to, copied[:_WORD])
                m.d.sync += [copy_to.eq(copy_to + 1), carry.eq(copied[_WORD])]
            return ~copy_writing & (copy_left == 0)

        # The reading being sealed, captured whole in one cycle and shifted out a
        # byte at a time into the staged copy.
        sealed = Signal(8 * SEALED_BYTES)
        sealed_left = Signal(range(SEALED_BYTES + 1))

        # The engine's input: the program's entries, each a constant or a RAM byte.
        entry = Signal(range(len(program.entries) + 1))
        entries_left = Signal(range(len(program.entries) + 1))
        fetched = Signal()          # the entry's RAM byte is on the read port
        m.d.comb += rom_read.addr.eq(entry)
        entry_value = rom_read.data
        constant = entry_value[8]
        m.d.comb += ram_read.addr.eq(entry_value[1:8])
        m.d.comb += engine.data.payload.eq(Mux(constant, entry_value[:8],
                                               Mux(entry_value[0], ram_read.data[8:],
                                                   ram_read.data[:8])))
        # The engine's output: the decrypted value, or the seal's tag, a byte each.
        output_at = Signal(8)
        m.d.comb += engine.output.ready.eq(1)

        # --- Sequence -----------------------------------------------------------------
        sealing = Signal()
        counter_address = Cat(Const(0, 1), authority[:3])   # the slot counter's first word
        difference = Signal(_WORD + 1)      # slot counter word - header counter word - borrow
        header_word = Signal(_WORD)
        replay_word = Signal()
        borrow = Signal()
        written_bytes = Signal(range(MAX_PAYLOAD + 1))
        local = self.local

        def finish(result, *, refused: bool):
            m.d.sync += [status.result.eq(result), busy.eq(0), sealing.eq(0)]
            if refused:
                m.d.sync += status.commands_refused.eq(status.commands_refused + 1)
            if refused and result is not SecurityResult.REFUSED:  # the bank refuses verified ones
                m.d.comb += self.rejected.eq(1)

        def start_engine(start: int, count: int):
            m.d.sync += [entry.eq(start), entries_left.eq(count), fetched.eq(0),
                         output_at.eq(Mux(sealing, _STAGING_OFFSET + _SEAL_TAG + TAG_BYTES - 1,
                                          _PLAINTEXT + VALUE_BYTES - 1))]

        zeroised = Signal(range(_KEY_WORDS * len(Authority)))
        with m.FSM():
            with m.State("IDLE"):
                with m.If(zeroise_pending):
                    m.d.sync += [busy.eq(1), zeroised.eq(0), zeroising.eq(1)]
                    m.next = "ZEROISE"
                with m.Elif(command_pending & ~intake):
                    m.d.sync += command_pending.eq(0)
                    with m.If(authority >= len(Authority)):
                        finish(SecurityResult.BAD_AUTHORITY, refused=True)
                    with m.Elif(~status.provisioned.bit_select(authority[:3], 1)):
                        finish(SecurityResult.NO_KEY, refused=True)
                    with m.Elif(own_title):
                        finish(SecurityResult.OWN_TITLE, refused=True)
                    with m.Else():
                        m.d.sync += [busy.eq(1), slot.eq(authority), borrow.eq(0),
                                     replay_word.eq(0)]
                        m.next = "REPLAY-HEADER"
                with m.Elif(seal_pending & ~intake):
                    m.d.sync += seal_pending.eq(0)
                    with m.If((seal_kind != SealKind.PROFILE_RECORD) &
                              (seal_kind != SealKind.SNAPSHOT)):
                        finish(SecurityResult.UNKNOWN_KIND, refused=False)
                    with m.Elif(~status.provisioned[Authority.READING]):
                        finish(SecurityResult.NO_KEY, refused=False)
                    with m.Else():
                        m.d.sync += [busy.eq(1), sealing.eq(1), slot.eq(Authority.READING),
                                     sealed_left.eq(SEALED_BYTES),
                                     sealed.eq(Mux(seal_kind == SealKind.PROFILE_RECORD,
                                                   self.profile_record,
                                                   Cat(self.export_wh, self.import_wh,
                                                       self.utc_seconds)))]
                        m.next = "SEAL-CAPTURE"

            with m.State("ZEROISE"):
                m.d.comb += [key_write.addr.eq(zeroised), key_write.data.eq(0),
                             key_write.en.eq(1)]
                m.d.sync += zeroised.eq(zeroised + 1)
                with m.If(zeroised == _KEY_WORDS * len(Authority) - 1):
                    m.d.sync += [zeroise_pending.eq(0), status.provisioned.eq(0), busy.eq(0),
                                 zeroising.eq(0)]
                    m.next = "IDLE"

            # The replay check, before the engine runs: the header's counter must be
            # above the slot's, a word at a time, lowest first, by the borrow of
            # slot - header.
            with m.State("REPLAY-HEADER"):
                m.d.comb += ram_read.addr.eq(_HEADER_COUNTER // 2 + replay_word)
                m.next = "REPLAY-SLOT"
            with m.State("REPLAY-SLOT"):
                m.d.comb += ram_read.addr.eq(counter_address + replay_word)
                m.d.sync += header_word.eq(ram_read.data)
                m.next = "REPLAY-COMPARE"
            with m.State("REPLAY-COMPARE"):
                m.d.comb += difference.eq(ram_read.data - header_word - borrow)
                m.d.sync += [borrow.eq(difference[_WORD]), replay_word.eq(1)]
                with m.If(~replay_word):
                    m.next = "REPLAY-HEADER"
                with m.Elif(difference[_WORD]):
                    start_engine(program.command_start, program.seal_start)
                    m.d.sync += engine_running.eq(1)
                    m.next = "ENGINE"
                with m.Else():
                    finish(SecurityResult.REPLAYED, refused=True)
                    m.next = "IDLE"

            with m.State("SEAL-CAPTURE"):
                # The reading's bytes into the staged copy, then the kind, then the
                # next seal counter: the published one plus one, unless it overflows.
                with m.If(sealed_left != 0):
                    write_byte(Const(_STAGING_OFFSET + _SEALED, 8) + sealed_left - 1,
                               sealed[-8:])
                    m.d.sync += [sealed.eq(sealed << 8), sealed_left.eq(sealed_left - 1)]
                with m.Else():
                    write_byte(Const(_KIND, 8), seal_kind)
                    start_copy(_SEAL_COUNTER // 2, (_STAGING_OFFSET + _SEAL_COUNTER) // 2, 2,
                               increment=True)
                    m.next = "SEAL-COUNTER"
            with m.State("SEAL-COUNTER"):
                with m.If(run_copy()):
                    with m.If(carry):
                        finish(SecurityResult.EXHAUSTED, refused=False)
                        m.next = "IDLE"
                    with m.Else():
                        start_engine(program.seal_start,
                                     len(program.entries) - program.seal_start)
                        m.d.sync += engine_running.eq(1)
                        m.next = "ENGINE"

            with m.State("ENGINE"):
                m.d.comb += [
                    engine.message.valid.eq(1),
                    engine.message.payload.aad_bytes.eq(Mux(sealing, SEAL_AAD_BYTES,
                                                            COMMAND_AAD_BYTES)),
                    engine.message.payload.payload_bytes.eq(Mux(sealing, 0, VALUE_BYTES)),
                    engine.message.payload.decrypt.eq(~sealing),
                    engine.message.payload.verify.eq(~sealing),
                ]
                with m.If(engine.message.ready):
                    m.next = "FEED"

            with m.State("FEED"):
                # An entry's RAM byte is read in the cycle after it is fetched.
                with m.If(entries_left != 0):
                    m.d.comb += engine.data.valid.eq(constant | fetched)
                    m.d.sync += fetched.eq(~constant)
                    with m.If(engine.data.valid & engine.data.ready):
                        m.d.sync += [entry.eq(entry + 1), entries_left.eq(entries_left - 1),
                                     fetched.eq(0)]
                with m.If(engine.output.valid):
                    write_byte(output_at, engine.output.payload)
                    m.d.sync += output_at.eq(output_at - 1)
                with m.If(engine.result.valid):
                    m.d.comb += engine.result.ready.eq(1)
                    m.d.sync += engine_running.eq(0)
                    with m.If(sealing):
                        start_copy(_STAGED // 2, _SEALED // 2, _PUBLISHED_WORDS)
                        m.next = "PUBLISH"
                    with m.Elif(engine.result.payload.tag_ok):
                        # Verified: the counter moves on whatever the bank answers.
                        start_copy(_HEADER_COUNTER // 2, counter_address, 2)
                        m.next = "COUNTER"
                    with m.Else():
                        finish(SecurityResult.BAD_TAG, refused=True)
                        m.next = "IDLE"

            with m.State("PUBLISH"):
                with m.If(run_copy()):
                    finish(SecurityResult.SEALED, refused=False)
                    m.next = "IDLE"

            with m.State("COUNTER"):
                with m.If(run_copy()):
                    with m.If(length > MAX_PAYLOAD):
                        m.d.sync += status.bus_status.eq(Status.BAD_LENGTH)
                        finish(SecurityResult.REFUSED, refused=True)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [written_bytes.eq(0), fetched.eq(0)]
                        m.next = "WRITE-REQUEST"

            # The decrypted value's last ``length`` bytes, most significant first.
            with m.State("WRITE-REQUEST"):
                m.d.comb += [local.request.valid.eq(1),
                             local.request.payload.address.eq(address),
                             local.request.payload.length.eq(length),
                             local.request.payload.authority.eq(authority)]
                with m.If(local.request.ready):
                    m.next = "WRITE-VALUE"
            with m.State("WRITE-VALUE"):
                at = Signal(8)
                m.d.comb += [at.eq(_PLAINTEXT - 1 + length - written_bytes),
                             ram_read.addr.eq(at[1:]),
                             local.data.payload.eq(Mux(at[0], ram_read.data[8:],
                                                       ram_read.data[:8])),
                             local.data.valid.eq(fetched & (written_bytes != length)),
                             local.status.ready.eq(1)]
                m.d.sync += fetched.eq(1)
                with m.If(local.data.valid & local.data.ready):
                    m.d.sync += [written_bytes.eq(written_bytes + 1), fetched.eq(0)]
                with m.If(local.status.valid):
                    m.d.sync += status.bus_status.eq(local.status.payload)
                    with m.If(local.status.payload == Status.OK):
                        m.d.sync += status.commands_accepted.eq(status.commands_accepted + 1)
                        finish(SecurityResult.ACCEPTED, refused=False)
                    with m.Else():
                        finish(SecurityResult.REFUSED, refused=True)
                    m.next = "IDLE"

        m.d.comb += self.system_title.value.eq(int.from_bytes(title, "big"))
        return m
