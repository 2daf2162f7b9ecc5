"""Byte-serial AES-128-GCM and GMAC (NIST SP 800-38D, 96-bit IV) for the smallest FPGAs.

:class:`SerialAesGcm` does what :class:`~.gcm.AesGcm` does with a byte-wide datapath
and every 16-byte value in block RAM, for about 450 iCE40 logic cells and 3 RAM blocks
instead of about 1,700 and 4: checking a DLMS command or sealing a reading needs no
microsecond engine, a millisecond is fine (8,573 cycles, 0.71 ms at 12 MHz, for 13
AAD bytes, 16 payload bytes and a 12-byte tag).

A message
---------
1. A header on ``message`` (:meth:`SerialAesGcm.header_layout`): the AAD and
   payload lengths in bytes (up to 2**``length_bits`` - 1 each), ``decrypt`` (the
   payload is ciphertext) and ``verify`` (an expected tag follows, check it rather
   than give one). The engine takes it when it starts the message.
2. Bytes on ``data``, in order: the 12-byte IV (in DLMS the system title, then the
   invocation counter, big-endian), the AAD, the payload, and with ``verify`` the
   ``tag_bytes`` bytes of the expected tag. The engine takes them when it wants.
3. Out on ``output``: one byte per payload byte (ciphertext, or plaintext with
   ``decrypt``), then, producing, the first ``tag_bytes`` bytes of the tag.
4. One ``result`` after the last output byte: ``tag_ok`` = 1 only when verifying and
   the expected tag equals the first ``tag_bytes`` bytes of the computed one.

The key is read a byte at a time through ``key``, a read port into its owner's RAM
(byte 0 is the key's first byte): the engine drives ``addr`` and ``en`` and takes
``data`` the cycle after, as from a synchronous, non-transparent Amaranth
``Memory``, so ``wiring.connect(m, engine.key, key_ram.read_port())`` works (the
port is ``In``, flipped, because the engine is the one that reads). The owner must
not change the key from taking the header to the result.
Decrypted bytes leave before the tag is checked: a consumer must hold them (in RAM
of its own) and use them only once ``result`` says ``tag_ok``.

``output.valid`` can follow ``data.valid`` and ``data.ready`` follow
``output.ready`` in the same cycle (a payload byte passes straight through, xored
with its keystream byte): connect no path from ``output`` back to ``data`` outside.

Why verifying leaks nothing
---------------------------
The tag is Z xor E(K, J0), Z the GHASH result. Verifying, the two meet a byte at a
time only in the comparison (tag byte xor expected byte, ORed into a sticky
"differs" flag): no register or port ever holds a computed tag byte, and ``output``
shows nothing (zero) while it is not valid. The comparison runs over all
``tag_bytes`` bytes whatever they are, so a wrong tag takes exactly the cycles of a
right one. ``tag_bytes`` is a parameter, so no sender can ask for a shorter check.

Architecture
------------
Three block RAMs: the S-box (a 256-byte ROM), ``work`` (the round key, two AES
states used in turn, the IV, and GHASH's Z and its product R, used in turn) and
``blocks`` (the AES results: H, E(K, J0) and the keystream block). The datapath is
a byte wide and pipelined: a step reads the RAMs (and the key port) in the cycle it
is issued, works on their data and writes the next cycle (stage 1); an S-box
look-up takes one cycle more (stage 2). A 4-byte shift register is the one wider
value in flip-flops: the key schedule's last word, then each state column on its
way through MixColumns. Steps that move a stream byte wait, with the pipeline, for
its handshake.

The message runs as phases, each a loop of steps:

* AES (per block): the key copied from the key port, the block (IV || counter, or
  zero for H) xored with it (32 steps); then 10 rounds, each the key schedule (4
  S-box look-ups of the last word, then 16 bytes updated in place) and 4 columns
  (4 S-box look-ups in ShiftRows order, then 4 MixColumns bytes xored with the
  round key). The last round writes into ``blocks``. 653 cycles a block.
* GHASH (per block): the block xored into Z in place (16 steps, taking the AAD or
  payload bytes), then Z.H by Horner's rule over Z's 128 bits, highest degree first:
  R = R.x + z_i.H, one pass over R's 16 bytes per bit with the shift's carry
  between bytes, and x^128's reduction (0xE1 into byte 0) decided by the bit the
  previous pass shifted out of byte 15. 17 cycles a bit (one fetches Z's byte),
  2,194 a block with the XOR.

Order: H = E(K, 0), E(K, J0), then the AAD blocks, then per payload block its
keystream E(K, IV || i), the bytes in and out, and its hash; then the lengths
block, then the tag. :func:`serial_gcm_cycles` gives the cycles of a message.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .sbox import sbox_table

__all__ = ["SerialAesGcm", "serial_gcm_cycles"]


class _Phase(enum.Enum, shape=4):
    IDLE = 0
    IV = 1              #: the IV's bytes into the work RAM
    LOAD = 2            #: key copied, block xor key (AES round 0)
    KEY_SBOX = 3        #: S-boxes of the round key's last word into the shift register
    KEY_UPDATE = 4      #: the round key updated in place
    STATE_SBOX = 5      #: a column's S-boxes, in ShiftRows order, into the shift register
    MIX = 6             #: MixColumns (none in round 10) xor round key, written out
    DISPATCH = 7        #: decides what the next block is
    ABSORB = 8          #: a block xored into GHASH's Z
    MULTIPLY = 9        #: Z.H into R, which becomes Z
    TAG = 10            #: the tag given out or compared
    RESULT = 11


class _Section(enum.Enum, shape=2):
    AAD = 0
    PAYLOAD = 1
    LENGTHS = 2


# Slots (16 bytes each) of the work RAM ...
_ROUND_KEY, _IV, _STATE, _HASH = 0, 1, 2, 4     # _STATE and _HASH are pairs
# ... and of the blocks RAM.
_H, _J0_MASK, _KEYSTREAM = 0, 1, 2

#: Cycles of an AES block: each phase takes a cycle per step, plus the cycle in which
#: its last step completes: LOAD, then 10 rounds of KEY_SBOX, KEY_UPDATE and 4
#: columns of STATE_SBOX and MIX.
_AES_CYCLES = (32 + 1) + 10 * ((4 + 1) + (16 + 1) + 4 * ((4 + 1) + (4 + 1)))
#: Cycles of a GHASH block: ABSORB, then MULTIPLY's 128 passes of 17 steps.
_GHASH_CYCLES = (16 + 1) + (128 * 17 + 1)


def serial_gcm_cycles(*, aad_bytes: int, payload_bytes: int, tag_bytes: int = 16) -> int:
    """Cycles of one message after the cycle its header is taken, up to and including
    the cycle its result is taken, with ``data`` always valid and ``output`` and
    ``result`` always ready. Every block starts with a cycle of DISPATCH."""
    aad_blocks, payload_blocks = -(-aad_bytes // 16), -(-payload_bytes // 16)
    return ((12 + 1) + 2 * _AES_CYCLES                                 # IV, H, E(K, J0)
            + aad_blocks * (1 + _GHASH_CYCLES) + 1                      # AAD, to payload
            + payload_blocks * (1 + _AES_CYCLES + _GHASH_CYCLES)
            + (1 + _GHASH_CYCLES) + 1                                   # lengths, to TAG
            + (tag_bytes + 1) + 1)                                      # TAG, RESULT


class _ReadPort:
    """A synchronous, non-transparent read port of ``ram`` (``addr``, ``en``, ``data``)
    built as an asynchronous one and a register. It behaves the same, but Yosys then
    merges the register into the block RAM and honours the memory's ``no_rw_check``
    instead of adding logic that gives the old byte when a byte is read in the cycle
    it is written: about 40 iCE40 logic cells for the two RAMs written. The engine
    uses no such read: a step writes the byte the step before it read, and the only
    collisions are in the cycle a phase's last step completes, whose read nothing
    uses."""

    def __init__(self, m: Module, ram: Memory):
        port = ram.read_port(domain="comb")
        self.addr = port.addr
        self.en = Signal()
        self.data = Signal(8, reset_less=True)
        with m.If(self.en):
            m.d.sync += self.data.eq(port.data)


def _xtime(byte):
    """``byte`` times x in GF(2^8) (FIPS-197 section 4.2.1)."""
    return Cat(Const(0, 1), byte[:7]) ^ Mux(byte[7], 0x1B, 0)


class SerialAesGcm(wiring.Component):
    """AES-128-GCM and GMAC, a byte at a time, with every 16-byte value in block RAM.

    Parameters
    ----------
    tag_bytes : int
        Bytes of tag produced or checked, 4 to 16 (DLMS uses 12).
    length_bits : int
        Width of the header's lengths: AAD and payload up to 2**``length_bits`` - 1
        bytes each, 1 to 32.

    Attributes
    ----------
    key : In(memory.ReadPort.Signature(addr_width=4, shape=8)), flipped
        The engine's read port into its owner's key RAM: ``addr`` (byte 0 is the
        key's first byte) and ``en`` driven by the engine, ``data`` the cycle after.
    message : In(stream.Signature(header_layout(length_bits)))
    data : In(stream.Signature(8))
        IV (12 bytes), AAD, payload, then with ``verify`` the expected tag.
    output : Out(stream.Signature(8))
        The payload transformed, then when producing the tag; zero when not valid.
    result : Out(stream.Signature(RESULT_LAYOUT))
    """

    RESULT_LAYOUT = data.StructLayout({"tag_ok": 1})

    @staticmethod
    def header_layout(length_bits: int) -> data.StructLayout:
        """The ``message`` header for lengths of ``length_bits`` bits."""
        return data.StructLayout({"aad_bytes": length_bits, "payload_bytes": length_bits,
                                  "decrypt": 1, "verify": 1})

    def __init__(self, *, tag_bytes: int = 16, length_bits: int = 8):
        if not isinstance(tag_bytes, int) or not 4 <= tag_bytes <= 16:
            raise ValueError(f"tag_bytes must be an integer from 4 to 16, not {tag_bytes!r}")
        if not isinstance(length_bits, int) or not 1 <= length_bits <= 32:
            raise ValueError(f"length_bits must be an integer from 1 to 32, not {length_bits!r}")
        self._tag_bytes = tag_bytes
        self._length_bits = length_bits
        super().__init__({
            # Flipped: the engine drives addr and en, the owner's memory answers.
            "key": In(memory.ReadPort.Signature(addr_width=4, shape=8)),
            "message": In(stream.Signature(self.header_layout(length_bits))),
            "data": In(stream.Signature(8)),
            "output": Out(stream.Signature(8)),
            "result": Out(stream.Signature(self.RESULT_LAYOUT)),
        })

    @property
    def tag_bytes(self) -> int:
        return self._tag_bytes

    @property
    def length_bits(self) -> int:
        return self._length_bits

    def elaborate(self, platform):
        m = Module()
        # The counter block's count: 0 for H, 1 for J0, then 2 up for the payload.
        payload_blocks = -(-((1 << self._length_bits) - 1) // 16)
        counter = Signal(range(payload_blocks + 3), reset_less=True)

        m.submodules.sbox = sbox = Memory(shape=8, depth=256, init=sbox_table(),
                                          attrs={"ram_style": "block"})
        m.submodules.work = work = Memory(shape=8, depth=6 * 16, init=[],
                                          attrs={"ram_style": "block", "no_rw_check": 1})
        m.submodules.blocks = blocks = Memory(shape=8, depth=3 * 16, init=[],
                                              attrs={"ram_style": "block", "no_rw_check": 1})
        sbox_read = sbox.read_port()
        work_read, work_write = _ReadPort(m, work), work.write_port()
        blocks_read, blocks_write = _ReadPort(m, blocks), blocks.write_port()

        # Only the control that must start in a known state resets: an iCE40 flip-flop
        # with an enable resets only while enabled, so a reset costs logic. The rest is
        # set when a message starts or a phase needs it. The phase register is
        # one-hot, so that each phase's decode is a flip-flop (13 logic cells fewer).
        phase = Signal(_Phase, attrs={"fsm_encoding": "one-hot"})
        section = Signal(_Section, reset_less=True)
        header = Signal(self.message.payload.shape(), reset_less=True)
        remaining = Signal(self._length_bits, reset_less=True)  # the section's bytes to take
        step = Signal(5, reset_less=True)       # the step to issue within the phase
        rcon = Signal(8, reset_less=True)       # the round's key schedule constant
        final = Signal()                        # round 10
        state_slot = Signal(reset_less=True)    # which of the _STATE pair the round writes
        ghash_bit = Signal(7, reset_less=True)  # MULTIPLY's pass: Z's bit 127 - ghash_bit
        z_slot = Signal(reset_less=True)        # which of the _HASH pair holds Z
        hash_empty = Signal(reset_less=True)    # Z is zero: no block hashed yet
        draining = Signal()                     # the phase's last step is issued
        differs = Signal(reset_less=True)       # a tag byte differed from the expected
        column = Signal(32, reset_less=True)    # 4 bytes, the head in bits 0-7
        head = column[:8]

        # Stage 1: the step issued in the previous cycle, its RAM data now valid.
        s1_valid = Signal()
        s1_step = Signal(5, reset_less=True)
        s1_zero = Signal(reset_less=True)  # the step reads zero instead of the work RAM
        s1_byte = s1_step[:4]
        # Stage 2: an S-box look-up issued two cycles ago arrives.
        s2_push = Signal()
        # GHASH's bit of Z in this pass, the shift's carry between bytes, and the
        # bit the previous pass shifted out of R (x^128: reduce).
        z_bit, carry, reduce = (Signal(reset_less=True) for _ in range(3))

        stall = Signal()            # stage 1 waits for a stream handshake
        issue = Signal()
        last = Signal()             # the step issued now is the phase's last
        zero = Signal()
        work_read_slot, blocks_read_slot = Signal(3), Signal(2)
        work_read_byte = Signal(4)
        m.d.comb += [
            # Round 10's constant, 0x36, is the only one with bits 1 and 5 set.
            final.eq(rcon[1] & rcon[5]),
            issue.eq(~draining & ~stall
                     & ~phase.as_value().matches(_Phase.IDLE, _Phase.DISPATCH, _Phase.RESULT)),
            work_read.addr.eq(Cat(work_read_byte, work_read_slot)),
            blocks_read.addr.eq(Cat(step[:4], blocks_read_slot)),
            self.key.addr.eq(step[:4]),
            # While stage 1 waits, every read port holds its data.
            work_read.en.eq(~stall),
            blocks_read.en.eq(~stall),
            self.key.en.eq(~stall),
            sbox_read.addr.eq(work_read.data),
        ]

        # --- Issue: what each phase reads ---------------------------------------------
        hash_slot = Cat(z_slot, Const(_HASH >> 1, 2))
        product_slot = Cat(~z_slot, Const(_HASH >> 1, 2))
        m.d.comb += work_read_byte.eq(step[:4])
        with m.Switch(phase):
            with m.Case(_Phase.IV):
                m.d.comb += [last.eq(step == 11), zero.eq(1)]
            with m.Case(_Phase.LOAD):
                # Steps 0-15 copy the key (the block reads as zero), 16-31 load
                # block xor key; the block is IV || counter, all zero for H.
                m.d.comb += [
                    last.eq(step == 31),
                    work_read_slot.eq(_IV),
                    zero.eq(~step[4] | (step[2:4] == 3) | (counter == 0)),
                ]
            with m.Case(_Phase.KEY_SBOX):
                # RotWord of the last word: bytes 13, 14, 15, 12.
                m.d.comb += [
                    last.eq(step[:2] == 3),
                    work_read_slot.eq(_ROUND_KEY),
                    work_read_byte.eq(Cat((step[:2] + 1)[:2], Const(3, 2))),
                ]
            with m.Case(_Phase.KEY_UPDATE):
                m.d.comb += [last.eq(step[:4] == 15), work_read_slot.eq(_ROUND_KEY)]
            with m.Case(_Phase.STATE_SBOX):
                # Row i of column c comes from column c + i of the previous state.
                m.d.comb += [
                    last.eq(step[:2] == 3),
                    work_read_slot.eq(Cat(~state_slot, Const(_STATE >> 1, 2))),
                    work_read_byte.eq(Cat(step[:2], (step[2:4] + step[:2])[:2])),
                ]
            with m.Case(_Phase.MIX):
                m.d.comb += [last.eq(step[:2] == 3), work_read_slot.eq(_ROUND_KEY)]
            with m.Case(_Phase.ABSORB):
                m.d.comb += [
                    last.eq(step[:4] == 15),
                    work_read_slot.eq(hash_slot),
                    zero.eq(hash_empty),
                    blocks_read_slot.eq(_KEYSTREAM),
                ]
            with m.Case(_Phase.MULTIPLY):
                # Step 16 fetches Z's byte holding this pass's bit, steps 0-15 are
                # R's bytes (zero in the first pass) with H's.
                m.d.comb += [
                    last.eq((step == 15) & (ghash_bit == 127)),
                    blocks_read_slot.eq(_H),
                    zero.eq(~step[4] & (ghash_bit == 0)),
                ]
                with m.If(step[4]):
                    m.d.comb += [work_read_slot.eq(hash_slot),
                                 work_read_byte.eq(~ghash_bit[3:])]
                with m.Else():
                    m.d.comb += work_read_slot.eq(product_slot)
            with m.Case(_Phase.TAG):
                m.d.comb += [
                    last.eq(step[:4] == self._tag_bytes - 1),
                    work_read_slot.eq(hash_slot),
                    blocks_read_slot.eq(_J0_MASK),
                ]

        with m.If(~stall):
            m.d.sync += [
                s1_valid.eq(issue), s1_step.eq(step), s1_zero.eq(zero),
                s2_push.eq(s1_valid & phase.as_value().matches(_Phase.KEY_SBOX,
                                                               _Phase.STATE_SBOX)),
            ]
        with m.If(issue):
            with m.If(last):
                m.d.sync += draining.eq(1)
            with m.Elif(phase.as_value().matches(_Phase.MULTIPLY) & step[4]):
                m.d.sync += step.eq(0)
            with m.Else():
                m.d.sync += step.eq(step + 1)
            with m.If(phase.as_value().matches(_Phase.MULTIPLY) & (step == 15)):
                m.d.sync += ghash_bit.eq(ghash_bit + 1)

        # --- Stage 1: what each phase does with the data ---------------------------------
        # Every value written is the work RAM's byte (or, in MULTIPLY, its shift) xored
        # with the operands the phase selects, each zero unless selected: one XOR
        # network rather than a multiplexer of a result per phase.
        word = Mux(s1_zero, 0, work_read.data)
        shift_word = Signal()
        use_blocks, use_data, use_key, use_head, use_mixed = (Signal() for _ in range(5))
        constant = Signal(8)
        a0, a1, a2, a3 = (column[8 * n:8 * n + 8] for n in range(4))
        mixed = _xtime(a0 ^ a1) ^ a1 ^ a2 ^ a3     # MixColumns' byte for row 0
        value = (Mux(shift_word, Cat(word[1:], carry), word)
                 ^ Mux(use_blocks, blocks_read.data, 0) ^ Mux(use_data, self.data.payload, 0)
                 ^ Mux(use_key, self.key.data, 0) ^ Mux(use_head, head, 0)
                 ^ Mux(use_mixed, mixed, 0) ^ constant)
        done = s1_valid & ~stall
        work_write_slot = Signal(3)
        m.d.comb += [
            work_write.addr.eq(Cat(s1_byte, work_write_slot)),
            work_write.data.eq(value),
            blocks_write.addr.eq(Cat(s1_byte, counter == 1, counter >= 2)),
            blocks_write.data.eq(value),
        ]

        # A payload byte passing through, xored with its keystream byte, or (producing)
        # a tag byte; zero unless offered.
        m.d.comb += self.output.payload.eq(Mux(
            self.output.valid,
            blocks_read.data ^ Mux(phase.as_value().matches(_Phase.TAG), work_read.data,
                                   self.data.payload),
            0))

        tail = Signal(8)            # what enters the shift register when it shifts
        shift = Signal()

        with m.Switch(phase):
            with m.Case(_Phase.IV):
                m.d.comb += [
                    self.data.ready.eq(s1_valid),
                    stall.eq(s1_valid & ~self.data.valid),
                    use_data.eq(1),
                    work_write_slot.eq(_IV),
                    work_write.en.eq(done),
                ]
            with m.Case(_Phase.LOAD):
                counter_byte = Cat(counter, Const(0, 32)).word_select(~s1_byte[:2], 8)
                m.d.comb += [
                    use_key.eq(1),
                    constant.eq(Mux(s1_step[4] & (s1_byte[2:] == 3), counter_byte, 0)),
                    work_write_slot.eq(Mux(s1_step[4], _STATE, _ROUND_KEY)),
                    work_write.en.eq(done),
                ]
            with m.Case(_Phase.KEY_UPDATE):
                m.d.comb += [
                    use_head.eq(1),
                    constant.eq(Mux(s1_byte == 0, rcon, 0)),
                    work_write_slot.eq(_ROUND_KEY),
                    work_write.en.eq(done),
                    tail.eq(value),
                    shift.eq(done),
                ]
            with m.Case(_Phase.MIX):
                m.d.comb += [
                    use_head.eq(final),
                    use_mixed.eq(~final),
                    work_write_slot.eq(Cat(state_slot, Const(_STATE >> 1, 2))),
                    work_write.en.eq(done & ~final),
                    blocks_write.en.eq(done & final),
                    tail.eq(head),
                    shift.eq(done),
                ]
            with m.Case(_Phase.ABSORB):
                payload = section == _Section.PAYLOAD
                taking = (section != _Section.LENGTHS) & (remaining != 0)
                # len(A) || len(C) in bits, 64 bits each, big-endian.
                lengths = Cat(Const(0, 3), header.payload_bytes, Const(0, 61 - self._length_bits),
                              Const(0, 3), header.aad_bytes, Const(0, 61 - self._length_bits))
                moves = self.data.valid & (self.output.ready | ~payload)
                m.d.comb += [
                    self.data.ready.eq(s1_valid & taking & (self.output.ready | ~payload)),
                    self.output.valid.eq(s1_valid & taking & payload & self.data.valid),
                    stall.eq(s1_valid & taking & ~moves),
                    # AAD, or the ciphertext: what comes in or (encrypting) what goes out.
                    use_data.eq(taking),
                    use_blocks.eq(taking & payload & ~header.decrypt),
                    constant.eq(Mux(section == _Section.LENGTHS, lengths.word_select(~s1_byte, 8),
                                    0)),
                    work_write_slot.eq(hash_slot),
                    work_write.en.eq(done),
                ]
                with m.If(done & taking):
                    m.d.sync += remaining.eq(remaining - 1)
            with m.Case(_Phase.MULTIPLY):
                with m.If(s1_step[4]):
                    with m.If(done):
                        m.d.sync += [z_bit.eq(work_read.data.bit_select(ghash_bit[:3], 1)),
                                     carry.eq(0)]
                with m.Else():
                    m.d.comb += [
                        shift_word.eq(1),
                        use_blocks.eq(z_bit),
                        constant.eq(Mux((s1_byte == 0) & reduce & ~s1_zero, 0xE1, 0)),
                        work_write_slot.eq(product_slot),
                        work_write.en.eq(done),
                    ]
                    with m.If(done):
                        m.d.sync += carry.eq(word[0])
                        with m.If(s1_byte == 15):
                            m.d.sync += reduce.eq(value[0])
            with m.Case(_Phase.TAG):
                # value = the tag byte, xor the expected one when verifying: only
                # ever compared with zero.
                m.d.comb += [use_blocks.eq(1), use_data.eq(header.verify)]
                with m.If(header.verify):
                    m.d.comb += [self.data.ready.eq(s1_valid),
                                 stall.eq(s1_valid & ~self.data.valid)]
                    with m.If(done & (value != 0)):
                        m.d.sync += differs.eq(1)
                with m.Else():
                    m.d.comb += [self.output.valid.eq(s1_valid),
                                 stall.eq(s1_valid & ~self.output.ready)]

        # An S-box look-up arrives in the first cycle of the phase after KEY_SBOX or
        # STATE_SBOX: it takes the shift register over from that phase.
        with m.If(s2_push):
            m.d.comb += [tail.eq(sbox_read.data), shift.eq(1)]
        with m.If(shift):
            m.d.sync += column.eq(Cat(column[8:], tail))

        # --- Phases ---------------------------------------------------------------------
        m.d.comb += [
            self.message.ready.eq(phase == _Phase.IDLE),
            self.result.valid.eq(phase == _Phase.RESULT),
            self.result.payload.tag_ok.eq(self.result.valid & header.verify & ~differs),
        ]
        with m.If(draining & ~stall):
            # The phase's last step completes now.
            m.d.sync += [draining.eq(0), step.eq(0)]
            with m.Switch(phase):
                with m.Case(_Phase.IV):
                    m.d.sync += phase.eq(_Phase.LOAD)
                with m.Case(_Phase.LOAD):
                    # LOAD wrote the state into the slot round 1 reads.
                    m.d.sync += [phase.eq(_Phase.KEY_SBOX), rcon.eq(1), state_slot.eq(1)]
                with m.Case(_Phase.KEY_SBOX):
                    m.d.sync += phase.eq(_Phase.KEY_UPDATE)
                with m.Case(_Phase.KEY_UPDATE):
                    m.d.sync += phase.eq(_Phase.STATE_SBOX)
                with m.Case(_Phase.STATE_SBOX):
                    m.d.sync += [phase.eq(_Phase.MIX), step.eq(Cat(Const(0, 2), step[2:]))]
                with m.Case(_Phase.MIX):
                    with m.If(step[2:4] != 3):
                        m.d.sync += [phase.eq(_Phase.STATE_SBOX), step.eq(step + 1)]
                    with m.Elif(~final):
                        m.d.sync += [phase.eq(_Phase.KEY_SBOX), rcon.eq(_xtime(rcon)),
                                     state_slot.eq(~state_slot)]
                    with m.Else():
                        m.d.sync += counter.eq(counter + 1)
                        with m.If(counter == 0):
                            m.d.sync += phase.eq(_Phase.LOAD)
                        with m.Elif(counter == 1):
                            m.d.sync += phase.eq(_Phase.DISPATCH)
                        with m.Else():
                            m.d.sync += phase.eq(_Phase.ABSORB)
                with m.Case(_Phase.ABSORB):
                    m.d.sync += [phase.eq(_Phase.MULTIPLY), step.eq(16), ghash_bit.eq(0),
                                 hash_empty.eq(0)]
                with m.Case(_Phase.MULTIPLY):
                    m.d.sync += [phase.eq(_Phase.DISPATCH), z_slot.eq(~z_slot)]
                with m.Case(_Phase.TAG):
                    m.d.sync += phase.eq(_Phase.RESULT)

        with m.Switch(phase):
            with m.Case(_Phase.IDLE):
                with m.If(self.message.valid):
                    m.d.sync += [
                        header.eq(self.message.payload),
                        section.eq(_Section.AAD),
                        remaining.eq(self.message.payload.aad_bytes),
                        counter.eq(0),
                        hash_empty.eq(1),
                        differs.eq(0),
                        step.eq(0),
                        phase.eq(_Phase.IV),
                    ]
            with m.Case(_Phase.DISPATCH):
                with m.Switch(section):
                    with m.Case(_Section.AAD):
                        with m.If(remaining != 0):
                            m.d.sync += phase.eq(_Phase.ABSORB)
                        with m.Else():
                            m.d.sync += [section.eq(_Section.PAYLOAD),
                                         remaining.eq(header.payload_bytes)]
                    with m.Case(_Section.PAYLOAD):
                        with m.If(remaining != 0):
                            m.d.sync += phase.eq(_Phase.LOAD)
                        with m.Else():
                            m.d.sync += [section.eq(_Section.LENGTHS), phase.eq(_Phase.ABSORB)]
                    with m.Case(_Section.LENGTHS):
                        m.d.sync += phase.eq(_Phase.TAG)
            with m.Case(_Phase.RESULT):
                with m.If(self.result.ready):
                    m.d.sync += phase.eq(_Phase.IDLE)
        return m
