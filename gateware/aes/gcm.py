"""AES-GCM and GMAC (NIST SP 800-38D) with a 96-bit IV: :class:`Aes128` and :class:`Ghash`.

A message
---------
A message is a header on ``message`` and its elements on ``data``:

1. The header (:data:`MESSAGE_LAYOUT`): the IV (in DLMS, the system title's 8
   bytes then the invocation counter's 4), the lengths of the additional
   authenticated data (AAD) and of the payload in bytes, whether the payload is
   decrypted (``decrypt``) and whether a tag is to be checked (``verify``) rather
   than produced. The engine holds the header, unanswered, for the whole message
   and takes it when the message ends: whoever offers it must keep it, and the
   ``key`` port, unchanged until then.
2. The AAD, ceil(``aad_bytes`` / 16) blocks, then the payload, ceil(``payload_bytes``
   / 16) blocks, each block one element (:data:`ELEMENT_LAYOUT`) with the first
   byte in the most significant bits. The bytes of a final block beyond the
   length are ignored. With ``verify``, one more element: the expected tag in its
   first ``tag_bytes`` bytes.
3. The element the header says is the message's last carries ``last``.

For each payload block the engine gives one ``output`` block: the ciphertext (or,
with ``decrypt``, the plaintext), its bytes beyond the length zero. When the
message ends it gives one ``result`` (:data:`RESULT_LAYOUT`):

* producing (``verify`` = 0): ``tag``, the first ``tag_bytes`` bytes of the tag
  (the rest zero); ``tag_ok`` = 0.
* verifying: ``tag_ok`` = 1 if the expected tag equals the first ``tag_bytes`` bytes
  of the computed one, and ``tag`` = 0: the computed tag never leaves the engine
  (see below), so a failed verification teaches nothing about the right tag.

GMAC is a message without payload. Sealing a reading is a GMAC produced; checking
a command's tag is a GMAC (or, with a ciphered command, a decryption) verified.

Bad framing
-----------
``last`` is how the sender says where its message ends, and the header is how the
engine counts. If they disagree the result has ``malformed`` = 1, ``tag_ok`` = 0
and ``tag`` = 0:

* ``last`` before the last element (a truncated message): the engine takes
  nothing more, runs the rest of the message's blocks on zeros without output
  (so the AES engine's responses are all used up), and gives the result.
* no ``last`` on the last element (a message longer than its header says): the
  engine gives the result, then takes and discards elements up to one with
  ``last``, and only then takes the header.

Either way the next header starts afresh with the sender's next message.
Decrypted blocks leave the engine before the tag is checked: a consumer must keep
them until the result says ``tag_ok``.

What the ports show
-------------------
Verifying, the computed tag is in no register and on no port, valid or not: GHASH
does not finish, and its Y meets E(K, J0) xor the expected tag only in the
comparison, one wide OR in the cycle the result is offered, whatever the bits are.
``result``'s flags are zero while ``valid`` is low, and its ``tag`` is zero while
verifying. Otherwise, as for :class:`Aes128`, a payload means something only while
its ``valid`` is high; in between, ``result.tag`` can show GHASH's operand (Y xor
a block) and ``output`` the datapath register (data, keystream, E(K, J0)), which
no consumer may latch, least of all into a register a host can read. ``output``
never shows the AES engine's working state: the datapath lets the AES response in
only while the engine offers it. A message takes the same cycles whether its tag
is right or wrong.

Sequence and cycles
-------------------
The engine asks :class:`Aes128` for, in order, H = E(K, 0^128), the keystream
E(K, IV || i) for i = 2, 3, ... (one per payload block) and E(K, J0 = IV || 1),
issuing each as soon as the engine takes requests (so an interleaved round
datapath has several in flight), and uses the responses in the same order: H
goes to the GHASH unit (which starts a new hash), each keystream block meets its
payload block, and E(K, J0) waits in the AES engine's response register until
GHASH has hashed the lengths block. Nothing holds a copy of E(K, J0) or of H
outside the two units. H is computed for every message, so a key may change
between any two messages.

Inputs and the AES response meet in one registered 128-bit datapath, so an
element is given out or hashed the cycle after it arrives, and a payload block
is hashed two cycles after it is given out; its keystream block is released as
it is given out. Back to back, an AAD block takes GHASH's cycles per block, and a
payload block the larger of GHASH's and the AES engine's, plus one on the column
datapath, whose next request waits for the keystream block to be released
(:func:`gcm_cycles_per_block`). The round datapath with ``interleave=3``
finishes its three blocks in flight a cycle apart, and while its response waits
the whole engine waits, so they stay bunched: about 10.7 cycles a payload block
with ``digit=16`` (measured), against 10 with ``interleave`` 1 or 2.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from .core import Aes128, _bytes_of, _join, cycles_per_block
from .ghash import Ghash, ghash_cycles_per_block

__all__ = ["AesGcm", "MESSAGE_LAYOUT", "ELEMENT_LAYOUT", "RESULT_LAYOUT", "LENGTH_BITS",
           "gcm_cycles_per_block"]

#: Width of the byte lengths in the header: AAD and payload up to 65,535 bytes
#: each, the largest DLMS APDU.
LENGTH_BITS = 16
#: Payload blocks of the longest message, plus J0 and the first counter value.
_COUNTER_BITS = (((1 << LENGTH_BITS) + 15) // 16 + 2).bit_length()

#: A message's header; 128-bit values are big-endian, as everywhere in :mod:`.core`.
MESSAGE_LAYOUT = data.StructLayout({
    "iv": 96,                       #: system title (8 bytes) || invocation counter (4 bytes)
    "aad_bytes": LENGTH_BITS,
    "payload_bytes": LENGTH_BITS,
    "decrypt": 1,                   #: 1: the payload is ciphertext, give the plaintext
    "verify": 1,                    #: 1: an expected tag follows; give tag_ok, never the tag
})
#: One element of a message: a block of AAD or payload, or the expected tag.
ELEMENT_LAYOUT = data.StructLayout({"data": 128, "last": 1})
#: The end of a message.
RESULT_LAYOUT = data.StructLayout({"tag": 128, "tag_ok": 1, "malformed": 1})


class _Phase(enum.Enum, shape=3):
    IDLE = 0
    HASH_KEY = 1      # H from the AES engine to GHASH
    AAD = 2
    PAYLOAD = 3
    LENGTHS = 4
    TAG = 5           # producing: GHASH finishes with E(K, J0)
    RESULT = 6
    DRAIN = 7         # the message was longer than its header said


class _Request(enum.Enum, shape=2):
    DONE = 0
    HASH_KEY = 1
    BODY = 2          # keystream blocks, then J0


def gcm_cycles_per_block(*, datapath: str, interleave: int = 1, digit: int) -> dict[str, int]:
    """Cycles per block of a long message, elements offered back to back and
    blocks taken at once: ``"aad"`` and ``"payload"``. ``interleave=3`` has no
    fixed figure (see the module documentation) and is refused."""
    if interleave == 3:
        raise ValueError("with interleave=3 the keystream blocks come in bunches and the "
                         "payload rate has no fixed figure; use interleave 1 or 2")
    ghash = ghash_cycles_per_block(digit)
    if datapath == "column":
        # The column engine takes its next request only once the keystream block
        # is released, a cycle after it was offered.
        payload = max(cycles_per_block(datapath="column") + 1, ghash)
    else:
        payload = max(cycles_per_block(datapath=datapath, interleave=interleave), ghash)
    return {"aad": ghash, "payload": payload}


class AesGcm(wiring.Component):
    """AES-128-GCM: encryption or decryption of a payload and a tag over AAD and
    payload, produced or verified (see the module documentation for the message
    format, bad framing and cycle counts).

    Parameters (keyword-only)
    -------------------------
    digit : int
        The GHASH unit's digit (:class:`Ghash`): pick one that keeps pace with
        the AES engine (4 beside the column datapath, 16 beside the round one).
    tag_bytes : int
        Bytes of the tag given or compared, 4 to 16 (DLMS uses 12). A parameter
        rather than a header field, so that no sender can ask for a shorter check.
    **engine
        The :class:`Aes128` parameters (``datapath``, ``sbox``, ``max_ram_blocks``,
        ``interleave``). GCM only encrypts, so ``decrypt`` is not one of them.

    Ports
    -----
    key : In(128)
        The AES key, big-endian; steady from a header's ``valid`` until the header
        is taken.
    message : In(stream.Signature(MESSAGE_LAYOUT))
        The header, taken when its message ends.
    data : In(stream.Signature(ELEMENT_LAYOUT))
        AAD blocks, payload blocks, then with ``verify`` the expected tag.
    output : Out(stream.Signature(128))
        One block per payload block: ciphertext, or plaintext with ``decrypt``.
    result : Out(stream.Signature(RESULT_LAYOUT))
        One per message: ``tag`` (producing), ``tag_ok`` (verifying: the expected
        tag matched), ``malformed`` (the header and ``last`` disagreed).
    """

    def __init__(self, *, digit: int = 4, tag_bytes: int = 16, **engine):
        if "decrypt" in engine:
            raise TypeError("AES-GCM only encrypts: do not pass decrypt")
        if not isinstance(tag_bytes, int) or isinstance(tag_bytes, bool) \
                or not 4 <= tag_bytes <= 16:
            raise ValueError(f"tag_bytes must be an integer from 4 to 16, not {tag_bytes!r}")
        ghash_cycles_per_block(digit)       # checks the digit
        # Built here, so that the parameters are checked now; the AES engine first,
        # so that nothing is left unused when its parameters are refused.
        self._aes = Aes128(**engine)
        self._ghash = Ghash(digit=digit)
        self._tag_bytes = tag_bytes
        super().__init__({
            "key": In(128),
            "message": In(stream.Signature(MESSAGE_LAYOUT)),
            "data": In(stream.Signature(ELEMENT_LAYOUT)),
            "output": Out(stream.Signature(128)),
            "result": Out(stream.Signature(RESULT_LAYOUT)),
        })

    @property
    def aes(self) -> Aes128:
        """The AES engine this GCM drives."""
        return self._aes

    @property
    def digit(self) -> int:
        return self._ghash.digit

    @property
    def tag_bytes(self) -> int:
        return self._tag_bytes

    @property
    def cycles_per_block(self) -> dict[str, int]:
        """Cycles per AAD and per payload block (see :func:`gcm_cycles_per_block`;
        not for ``interleave=3``)."""
        return gcm_cycles_per_block(datapath=self._aes.datapath,
                                    interleave=self._aes.interleave, digit=self.digit)

    def elaborate(self, platform):
        m = Module()
        m.submodules.aes = aes = self._aes
        m.submodules.ghash = ghash = self._ghash
        header = self.message.payload
        element = self.data.payload
        response = aes.response

        tag_bytes = self._tag_bytes

        phase = Signal(_Phase)
        remaining = Signal(LENGTH_BITS)     # bytes of the current section from this block on
        full = Signal()                     # remaining >= 16: this block has all its bytes
        sent = Signal()                     # this payload block's output was taken
        truncated = Signal()                # ``last`` came early: finishing on zeros
        malformed = Signal()
        ended = Signal()                    # the sender's message has ended

        # --- Requests to the AES engine: H, the keystream, J0 ------------------------
        request_phase = Signal(_Request)
        issued = Signal(_COUNTER_BITS)      # keystream blocks requested
        more_keystream = Cat(Const(0, 4), issued) < header.payload_bytes
        counter = Signal(32)
        m.d.comb += [
            counter.eq(Mux(more_keystream, issued + 2, 1)),
            aes.request.valid.eq(request_phase != _Request.DONE),
            aes.request.payload.key.eq(self.key),
            aes.request.payload.block.eq(
                Mux(request_phase == _Request.HASH_KEY, 0, Cat(counter, header.iv))),
        ]
        with m.If(aes.request.valid & aes.request.ready):
            with m.If(request_phase == _Request.HASH_KEY):
                m.d.sync += request_phase.eq(_Request.BODY)
            with m.Elif(more_keystream):
                m.d.sync += issued.eq(issued + 1)
            with m.Else():
                m.d.sync += request_phase.eq(_Request.DONE)

        # --- The shared 128-bit datapath ------------------------------------------
        # One register, xp, serves both the output and the GHASH input: xp =
        # (element & data_on) ^ (response & response_on) ^ lengths, enabled byte by
        # byte. A payload block goes out with both enabled for its bytes (data ^
        # keystream), releasing its keystream block, then is hashed: as it is when
        # encrypting, as the input ciphertext when decrypting. At the end, E(K, J0)
        # passes (producing) to finish GHASH, or with the expected tag (verifying)
        # to be compared.
        #
        # Registered, xp costs one LUT a bit (in the same logic cells as its
        # flip-flops) where combinational logic would take two, its enables being
        # copied into every bit; and it lets in the AES response only when the
        # engine offers it (otherwise its payload is the engine's working state):
        # while a response is wanted and not offered, xp is cleared instead, by the
        # flip-flops' synchronous reset. xp shows the inputs and state of the cycle
        # before, so it is used only when nothing moved then (``steady``) and its
        # inputs were already offered.
        in_hash_key = phase == _Phase.HASH_KEY
        in_aad = phase == _Phase.AAD
        in_payload = phase == _Phase.PAYLOAD
        in_lengths = phase == _Phase.LENGTHS
        in_tag = phase == _Phase.TAG
        in_result = phase == _Phase.RESULT
        in_drain = phase == _Phase.DRAIN
        tag_element = header.verify & ~truncated
        give_tag = ~header.verify & ~malformed
        live = (in_aad | in_payload) & ~truncated
        keystream_live = in_payload & ~truncated & ~sent
        compare = in_result & header.verify
        kept = [full | (remaining[:4] > n) for n in range(16)]
        data_on = [(live & kept[n]) | (compare & tag_element if n < tag_bytes else 0)
                   for n in range(16)]
        response_on = [(keystream_live & kept[n]) | (in_tag & give_tag) |
                       (compare if n < tag_bytes else 0) for n in range(16)]
        response_wanted = keystream_live | (in_tag & give_tag) | compare
        xp = Signal(128)
        lengths = Cat(Const(0, 3), header.payload_bytes, Const(0, 64 - 3 - LENGTH_BITS),
                      Const(0, 3), header.aad_bytes, Const(0, 64 - 3 - LENGTH_BITS))
        # Once a payload block is out, xp keeps the ciphertext for GHASH when
        # encrypting (its keystream block is released), or becomes the input
        # ciphertext when decrypting.
        keep_ciphertext = in_payload & sent & ~header.decrypt
        # Idle, every enable is off and xp is zero anyway; saying so spares the
        # Amaranth simulator the whole expression in every idle cycle.
        with m.If((phase == _Phase.IDLE) | (response_wanted & ~response.valid)):
            m.d.sync += xp.eq(0)
        with m.Elif(~keep_ciphertext):
            m.d.sync += xp.eq(
                _join((d & d_on.replicate(8)) ^ (s & s_on.replicate(8))
                      for d, s, d_on, s_on in zip(_bytes_of(element.data),
                                                  _bytes_of(response.payload),
                                                  data_on, response_on))
                ^ (lengths & in_lengths.replicate(128)))
        steady = Signal()                   # no step last cycle: xp follows the state
        data_was_valid = Signal()
        response_was_valid = Signal()
        m.d.sync += [data_was_valid.eq(self.data.valid), response_was_valid.eq(response.valid)]
        data_in = self.data.valid & data_was_valid
        response_in = response.valid & response_was_valid

        # --- H to GHASH -----------------------------------------------------------
        m.d.comb += [
            ghash.hash_key.valid.eq(in_hash_key & response.valid),
            ghash.hash_key.payload.eq(response.payload),
        ]

        # --- Blocks: output, then GHASH ---------------------------------------------
        # Producing, GHASH finishes with E(K, J0): its ``sum`` is then the tag.
        # Verifying, it does not, and its ``sum`` stays zero.
        m.d.comb += [
            self.output.valid.eq(steady & in_payload & ~truncated & ~sent & data_in &
                                 response_in),
            self.output.payload.eq(xp),
            ghash.block.payload.data.eq(xp),
            ghash.block.payload.finish.eq(in_tag),
            ghash.block.valid.eq(steady & (
                (in_aad & (data_in | truncated)) |
                (in_payload & (sent | (truncated & response_in))) |
                in_lengths | (in_tag & give_tag & response_in))),
        ]
        with m.If(self.output.valid & self.output.ready):
            m.d.sync += sent.eq(1)
        hashed = ghash.block.valid & ghash.block.ready
        block_done = hashed & (in_aad | in_payload)

        # --- The result -------------------------------------------------------------
        # Verifying, Y ^ xp = Y ^ E(K, J0) ^ expected = tag ^ expected, compared with
        # zero by one wide OR in the cycle the result is offered, whatever the bits
        # are; the tag itself is never in a register.
        bad = malformed | (tag_element & ~element.last)
        finished = ended | (tag_element & element.last)
        m.d.comb += self.result.valid.eq(steady & in_result & response_in & ~ghash.busy &
                                         (~tag_element | data_in))
        difference = [y ^ x for y, x in zip(_bytes_of(ghash.y), _bytes_of(xp))][:tag_bytes]
        m.d.comb += [
            self.result.payload.tag.eq(_join(
                byte if n < tag_bytes else Const(0, 8)
                for n, byte in enumerate(_bytes_of(ghash.sum)))),
            self.result.payload.tag_ok.eq(self.result.valid & header.verify & ~bad &
                                          ~Cat(*difference).any()),
            self.result.payload.malformed.eq(self.result.valid & bad),
        ]
        result_taken = self.result.valid & self.result.ready

        # --- Handshakes on the inputs and the AES response ---------------------------
        drained = in_drain & self.data.valid & element.last
        output_taken = self.output.valid & self.output.ready
        hash_key_taken = ghash.hash_key.valid & ghash.hash_key.ready
        started = (phase == _Phase.IDLE) & self.message.valid
        # Every change of state happens at one of these.
        m.d.sync += steady.eq(~(started | hash_key_taken | output_taken | hashed |
                                 (in_tag & ~give_tag) | result_taken | drained))
        m.d.comb += [
            self.data.ready.eq((block_done & ~truncated) | (result_taken & tag_element) |
                               in_drain),
            response.ready.eq(hash_key_taken | output_taken |
                              (in_payload & truncated & hashed) | result_taken),
            self.message.ready.eq((result_taken & finished) | drained),
        ]

        # --- Sequencing ---------------------------------------------------------------
        def load_remaining(value):
            m.d.sync += [remaining.eq(value), full.eq(value[4:LENGTH_BITS].any())]

        def enter_aad_or_later():
            with m.If(header.aad_bytes != 0):
                m.d.sync += phase.eq(_Phase.AAD)
                load_remaining(header.aad_bytes)
            with m.Else():
                enter_payload_or_later()

        def enter_payload_or_later():
            with m.If(header.payload_bytes != 0):
                m.d.sync += phase.eq(_Phase.PAYLOAD)
                load_remaining(header.payload_bytes)
            with m.Else():
                m.d.sync += phase.eq(_Phase.LENGTHS)

        section_last = remaining <= 16
        with m.Switch(phase):
            with m.Case(_Phase.IDLE):
                with m.If(self.message.valid):
                    m.d.sync += [
                        phase.eq(_Phase.HASH_KEY), sent.eq(0), truncated.eq(0),
                        request_phase.eq(_Request.HASH_KEY), issued.eq(0), malformed.eq(0),
                        # A message of no elements has ended before it starts.
                        ended.eq((header.aad_bytes == 0) & (header.payload_bytes == 0) &
                                 ~header.verify),
                    ]
            with m.Case(_Phase.HASH_KEY):
                with m.If(hash_key_taken):
                    enter_aad_or_later()
            with m.Case(_Phase.AAD, _Phase.PAYLOAD):
                with m.If(block_done):
                    m.d.sync += sent.eq(0)
                    load_remaining(remaining - 16)
                    message_last = section_last & ~header.verify & \
                        (in_payload | (header.payload_bytes == 0))
                    with m.If(~truncated & element.last & ~message_last):
                        m.d.sync += [truncated.eq(1), malformed.eq(1), ended.eq(1)]
                    with m.If(~truncated & message_last):
                        m.d.sync += ended.eq(element.last)
                        with m.If(~element.last):
                            m.d.sync += malformed.eq(1)
                    with m.If(section_last):
                        with m.If(in_aad):
                            enter_payload_or_later()
                        with m.Else():
                            m.d.sync += phase.eq(_Phase.LENGTHS)
            with m.Case(_Phase.LENGTHS):
                with m.If(hashed):
                    m.d.sync += phase.eq(_Phase.TAG)
            with m.Case(_Phase.TAG):
                with m.If(hashed | ~give_tag):
                    m.d.sync += phase.eq(_Phase.RESULT)
            with m.Case(_Phase.RESULT):
                with m.If(result_taken):
                    m.d.sync += phase.eq(Mux(finished, _Phase.IDLE, _Phase.DRAIN))
            with m.Case(_Phase.DRAIN):
                with m.If(drained):
                    m.d.sync += phase.eq(_Phase.IDLE)
        return m
