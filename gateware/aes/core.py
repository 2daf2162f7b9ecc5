"""The AES-128 engine: one block per request, encryption and optionally decryption.

Byte order
----------
Every 128-bit value (key, block, result) is big-endian: FIPS-197 byte 0 is bits
127..120, so ``int.from_bytes(data, "big")`` on the host gives the payload. In the
state, byte ``n`` is row ``n % 4`` of column ``n // 4``, and a 32-bit column or key
word has row 0 in its top byte.

Datapaths
---------
``datapath="column"`` (small)
    Four S-boxes work on one 32-bit column per cycle and are shared with the key
    schedule, which needs them for one cycle per round: a round is 5 cycles. The
    round key lives in a ring of four words that makes one new word per cycle,
    just before the column that needs it. The state lives in per-row shift
    registers whose taps deliver bytes in ShiftRows order (encryption only), or,
    with decryption, in a ring of four columns that is permuted (ShiftRows or
    InvShiftRows) once per round.

``datapath="round"`` (fast)
    Sixteen S-boxes for the state and four for the key schedule complete one
    round per cycle. With ``interleave`` P of 2 or 3, every S-box lane is a
    P-stage pipeline and P blocks are in flight, each with its own key and
    control state, taking turns cycle by cycle: each block needs P cycles per
    round, the engine still finishes one round per cycle, and the clock can be
    faster because a cycle holds a P-th of a round. The round key is then also
    computed a cycle ahead of its use.

S-boxes
-------
``sbox="ram"`` puts each S-box lane in a 256x8 ROM (512x8 with the inverse
table when decryption is enabled): one iCE40 EBR or ECP5 DP16KD each, read
synchronously, which is why every lane has a registered input and the datapaths
are built around a lookup of one cycle (or P). ``max_ram_blocks`` caps how many
lanes go to RAM (the round datapath's four key lanes first); the rest use the
logic S-box. ``sbox="logic"`` builds every lane from Boyar and Peralta's
depth-16 circuit (see :mod:`.sbox`), cut into P stages when pipelined.

Cycles per block
----------------
Back to back, each response taken as soon as it is offered (see
:func:`cycles_per_block`):

===========================  ==========  ==========================================
configuration                encrypt     decrypt
===========================  ==========  ==========================================
column                       52          --
column, decrypt=True         55          110 (50 of them derive round key 10)
round, interleave=1          10          20 (10 of them derive round key 10)
round, interleave=2          10          23
round, interleave=3          10          32
===========================  ==========  ==========================================

With ``interleave`` P the figures need P requests in flight: one block alone
takes 10 x P cycles (and a decryption twice that). A decryption holds its request
while it derives round key 10, one at a time, which sets the pace of a stream of
decryptions.

Key handling
------------
The request carries the key with every block and encryption expands it on the
fly from there, so there is nothing to cache: a key change costs nothing, and a
repeated key (GCM) costs nothing either. Decryption needs the last round key
first; the engine derives it by running the schedule forward once per request
and then runs it backwards alongside the rounds. Keeping it between requests
would need a 128-bit copy of the key and a comparator (about 200 LCs on iCE40)
for a mode refmeter uses only to unwrap keys (RFC 3394: six decryptions per
64-bit key half), so decryption pays the derivation every time instead.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from . import sbox as _sbox

__all__ = ["Aes128", "SboxLane", "DATAPATHS", "SBOXES", "cycles_per_block", "request_layout"]

DATAPATHS = ("column", "round")
SBOXES = ("ram", "logic")

#: Round constants, indexed by round 1..10 (index 0 unused).
_RCON = (0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1B, 0x36)


def request_layout(*, decrypt: bool) -> data.StructLayout:
    """The request payload: ``block`` and ``key`` (128 bits, big-endian), and with
    ``decrypt`` a ``decrypt`` flag (1: decrypt ``block``, 0: encrypt it)."""
    members = {"block": 128, "key": 128}
    if decrypt:
        members["decrypt"] = 1
    return data.StructLayout(members)


def cycles_per_block(*, datapath: str, decrypt: bool = False, decrypting: bool = False,
                     interleave: int = 1) -> int:
    """Clock cycles per block, requests back to back and responses taken at once, for
    an engine built with ``decrypt`` (which changes how the column datapath holds
    its state) doing encryptions, or with ``decrypting`` decryptions. With
    ``interleave`` P, with P blocks in flight (one block alone takes P times as
    long)."""
    if decrypting and not decrypt:
        raise ValueError("an engine without decrypt=True cannot decrypt")
    if datapath == "column":
        if not decrypt:
            return 52
        return 110 if decrypting else 55
    if decrypting:
        # A decryption holds the request while it derives round key 10, so with
        # more slots the derivations, one at a time, set the pace: 10 rounds of
        # ``interleave`` cycles, plus the wait for a free slot's key stage.
        return {1: 20, 2: 23, 3: 32}[interleave]
    return 10


# --- Byte-order helpers ------------------------------------------------------------

def _bytes_of(value) -> list:
    """FIPS-197 bytes 0..15 of a 128-bit big-endian value."""
    return [value[(15 - n) * 8:(16 - n) * 8] for n in range(16)]


def _words_of(value) -> list:
    """Columns (key words) 0..3 of a 128-bit big-endian value."""
    return [value[(3 - c) * 32:(4 - c) * 32] for c in range(4)]


def _word_bytes(word) -> list:
    """Rows 0..3 of a 32-bit column (row 0 is the top byte)."""
    return [word[(3 - i) * 8:(4 - i) * 8] for i in range(4)]


def _join(parts) -> Value:
    """The inverse of the helpers above: most significant part first."""
    return Cat(*reversed(list(parts)))


def _rot_word(word):
    """RotWord: [a0, a1, a2, a3] -> [a1, a2, a3, a0]."""
    a = _word_bytes(word)
    return _join([a[1], a[2], a[3], a[0]])


def _shift_rows(state_bytes: list, *, inverse: bool) -> list:
    """ShiftRows (row i rotated left by i) or its inverse, on a list of 16 bytes."""
    sign = -1 if inverse else 1
    return [state_bytes[4 * ((c + sign * i) % 4) + i] for c in range(4) for i in range(4)]


def _xtime(b):
    """Multiplication by x (02) in GF(2^8)."""
    return Cat(b[7], b[0] ^ b[7], b[1], b[2] ^ b[7], b[3] ^ b[7], b[4], b[5], b[6])


def _mix_column(a: list) -> list:
    """MixColumns on one column given as four bytes, row 0 first."""
    return [_xtime(a[i]) ^ _xtime(a[(i + 1) % 4]) ^ a[(i + 1) % 4] ^ a[(i + 2) % 4] ^ a[(i + 3) % 4]
            for i in range(4)]


def _inverse_mix_prepare(a: list) -> list:
    """The map P with InvMixColumns = MixColumns o P (Daemen and Rijmen, 4.1.3):
    a0 ^= 04(a0 ^ a2), a2 ^= 04(a0 ^ a2), a1 ^= 04(a1 ^ a3), a3 ^= 04(a1 ^ a3).
    Decryption reuses the MixColumns logic after this small step."""
    u = _xtime(_xtime(a[0] ^ a[2]))
    v = _xtime(_xtime(a[1] ^ a[3]))
    return [a[0] ^ u, a[1] ^ v, a[2] ^ u, a[3] ^ v]


def _wire(m: Module, value, name: str) -> Signal:
    """``value`` through a named signal: the netlist then shares it between its uses
    instead of copying the expression into each (which the nested GF(2^8) products
    would otherwise multiply many times over)."""
    signal = Signal(len(value), name=name)
    m.d.comb += signal.eq(value)
    return signal


def _mix_word(m: Module, word, name: str, *, inverse=None):
    """MixColumns of a 32-bit column; with ``inverse`` (a 1-bit value) true,
    InvMixColumns."""
    a = [_wire(m, byte, f"{name}_in{i}") for i, byte in enumerate(_word_bytes(word))]
    if inverse is not None:
        prepared = _inverse_mix_prepare(a)
        a = [_wire(m, Mux(inverse, p, x), f"{name}_prepared{i}")
             for i, (p, x) in enumerate(zip(prepared, a))]
    return _join(_mix_column(a))


def _rcon(round_number) -> Value:
    """The round constant for ``round_number`` (1..10) as a byte, from comparators
    rather than a case statement, so that synthesis keeps it out of RAM."""
    bits = []
    for bit in range(8):
        rounds = [r for r in range(1, 11) if (_RCON[r] >> bit) & 1]
        term = Const(0, 1)
        for r in rounds:
            term = term | (round_number == r)
        bits.append(term)
    return Cat(*bits)


def _key_step_forward(words: list, substituted, rcon) -> list:
    """One step of the key expansion: round key r from round key r - 1.
    ``substituted`` is SubWord(RotWord(w3))."""
    # Written out flat rather than as the chain w1 = w1 ^ w0', w2 = w2 ^ w1', ...:
    # synthesis then builds each word as a shallow XOR tree.
    t = substituted ^ Cat(Const(0, 24), rcon)
    return [words[0] ^ t,
            words[1] ^ words[0] ^ t,
            words[2] ^ words[1] ^ words[0] ^ t,
            words[3] ^ words[2] ^ words[1] ^ words[0] ^ t]


def _key_step_inverse(words: list, substituted, rcon) -> list:
    """Round key r - 1 from round key r. ``substituted`` is
    SubWord(RotWord(w3 of round key r - 1)) = SubWord(RotWord(w3 ^ w2 of round key r))."""
    return [words[0] ^ substituted ^ Cat(Const(0, 24), rcon),
            words[1] ^ words[0], words[2] ^ words[1], words[3] ^ words[2]]


# --- S-box lanes -------------------------------------------------------------------

#: Gate depth of the Boyar-Peralta circuit; the inverse selection adds a level at
#: each end.
_SBOX_DEPTH = 16
#: Gate depth of what follows a lane in the same cycle (MixColumns, AddRoundKey and
#: the load multiplexer, or the key step): the last stage of a pipelined lane is
#: made this much shorter so that the cycle stays balanced.
_AFTER_LANE_DEPTH = 6
#: Gate levels between named wires inside a logic S-box.
_WIRE_EVERY = 3


def _logic_sbox(m: Module, name: str, x, inverse, *, cuts=(), enable=1):
    """The Boyar-Peralta circuit on byte ``x``, with ``inverse`` (a 1-bit value,
    or None for forward only) selecting the inverse S-box.

    ``cuts`` are gate depths after which a pipeline register (enabled by
    ``enable``) splits the circuit: a gate at a depth beyond k cuts takes its
    inputs delayed by registers until they have passed k cuts too. Returns the
    output byte, ``len(cuts)`` cycles after the input.
    """
    cuts = sorted(cuts)
    values = {}                             # name -> (value, depth)
    delayed = {}                            # (name, stage) -> registered copy

    def stage_of(depth):
        return sum(1 for cut in cuts if cut < depth)

    def at_stage(name_, stage):
        value, depth = values[name_]
        have = stage_of(depth)
        while have < stage:
            key = (name_, have + 1)
            if key not in delayed:
                register = Signal(len(value), name=f"{name}_{name_}_p{have + 1}",
                                  reset_less=True)
                with m.If(enable):
                    m.d.sync += register.eq(value)
                delayed[key] = register
            value, have = delayed[key], have + 1
        return value

    def gate(output, depth_inputs, make):
        depth = 1 + max(values[i][1] for i in depth_inputs)
        stage = stage_of(depth)
        value = make(*(at_stage(i, stage) for i in depth_inputs))
        if depth % _WIRE_EVERY == 0:
            # A named wire every few levels: often enough that the expressions
            # between wires stay small, rarely enough that the simulator settles
            # the circuit in few passes.
            signal = Signal(name=f"{name}_{output}")
            m.d.comb += signal.eq(value)
            value = signal
        values[output] = (value, depth)

    operators = {"^": lambda a, b: a ^ b, "&": lambda a, b: a & b,
                 "#": lambda a, b: ~(a ^ b)}

    def run(gates, prefix, layer_inputs):
        """One layer; its own wires get ``prefix``, its inputs come from
        ``layer_inputs`` (layer name -> wire name)."""
        def source(name_):
            return layer_inputs.get(name_, f"{prefix}{name_}")
        for output, operator, left, right in gates:
            target = f"{prefix}{output}"
            if operator == "=":
                values[target] = values[source(left)]
            else:
                gate(target, (source(left), source(right)), operators[operator])

    for bit in range(8):
        values[f"x{bit}"] = (x[bit], 0)
    inputs = {f"x{bit}": f"x{bit}" for bit in range(8)}
    if inverse is not None:
        values["inverse"] = (inverse, 0)
    # Top layer(s); names are prefixed per layer so that their temporaries differ.
    run(_sbox.circuit("top", False), "f_", inputs)
    if inverse is None:
        middle_inputs = {y: f"f_{y}" for y in _sbox.MIDDLE_INPUTS}
    else:
        run(_sbox.circuit("top", True), "i_", inputs)
        for y in _sbox.MIDDLE_INPUTS:
            gate(f"s_{y}", ("inverse", f"i_{y}", f"f_{y}"), lambda s, a, b: Mux(s, a, b))
        middle_inputs = {y: f"s_{y}" for y in _sbox.MIDDLE_INPUTS}
    run(_sbox.circuit("middle"), "m_", middle_inputs)
    z_names = {z: f"m_{z}" for z in _sbox.MIDDLE_OUTPUTS}
    run(_sbox.circuit("bottom", False), "fb_", z_names)
    outputs = [f"fb_s{bit}" for bit in range(8)]
    if inverse is not None:
        run(_sbox.circuit("bottom", True), "ib_", z_names)
        for bit in range(8):
            gate(f"o_s{bit}", ("inverse", f"ib_s{bit}", f"fb_s{bit}"),
                 lambda s, a, b: Mux(s, a, b))
        outputs = [f"o_s{bit}" for bit in range(8)]
    return Cat(*(at_stage(output, len(cuts)) for output in outputs))


class SboxLane(wiring.Component):
    """One S-box lookup per cycle: ``addr`` (and ``inverse``, 1 for the inverse
    S-box) presented in one cycle give ``data`` ``latency`` cycles later, while
    ``enable`` is high.

    ``kind="ram"`` reads a ROM synchronously (the ROM's address register is the
    lane's first register); more latency adds registers on its output.
    ``kind="logic"`` registers its input (``register_at="input"``, like the ROM)
    or its output (latency 1 only); more latency cuts the circuit into pipeline
    stages of about equal gate depth, the last one shorter by the logic that
    follows the lane in the same cycle.
    """

    def __init__(self, *, kind: str, inverse: bool = False, latency: int = 1,
                 register_at: str = "input"):
        if kind not in SBOXES:
            raise ValueError(f"kind must be one of {', '.join(map(repr, SBOXES))}, not {kind!r}")
        if not isinstance(inverse, bool):
            raise TypeError(f"inverse must be a bool, not {inverse!r}")
        if latency not in (1, 2, 3):
            raise ValueError(f"latency must be 1, 2 or 3, not {latency!r}")
        if register_at not in ("input", "output") or (register_at == "output" and latency != 1):
            raise ValueError("register_at must be 'input', or 'output' with latency 1")
        self._kind = kind
        self._inverse = inverse
        self._latency = latency
        self._register_at = register_at
        members = {"addr": In(8), "enable": In(1, init=1), "data": Out(8)}
        if inverse:
            members["inverse"] = In(1)
        super().__init__(members)

    @property
    def latency(self) -> int:
        return self._latency

    def elaborate(self, platform):
        m = Module()
        inverse = self.inverse if self._inverse else None
        if self._kind == "ram":
            table = list(_sbox.sbox_table())
            address = self.addr
            if inverse is not None:
                table += list(_sbox.inverse_sbox_table())
                address = Cat(self.addr, inverse)
            # A block RAM even where synthesis would rather build so small a ROM from
            # LUTs (Yosys does, for ECP5): the point of this lane is the LUTs it saves.
            m.submodules.rom = rom = Memory(shape=8, depth=len(table), init=table,
                                            attrs={"ram_style": "block"})
            port = rom.read_port(domain="sync")
            m.d.comb += [port.addr.eq(address), port.en.eq(self.enable)]
            result = port.data
            for stage in range(1, self._latency):
                output = Signal(8, name=f"out{stage}", reset_less=True)
                with m.If(self.enable):
                    m.d.sync += output.eq(result)
                result = output
            m.d.comb += self.data.eq(result)
            return m

        if self._register_at == "output":
            output = Signal(8, name="out", reset_less=True)
            with m.If(self.enable):
                m.d.sync += output.eq(_logic_sbox(m, "s", self.addr, inverse))
            m.d.comb += self.data.eq(output)
            return m

        x = Signal(8, name="x", reset_less=True)
        with m.If(self.enable):
            m.d.sync += x.eq(self.addr)
        if inverse is not None:
            registered_inverse = Signal(name="x_inverse", reset_less=True)
            with m.If(self.enable):
                m.d.sync += registered_inverse.eq(inverse)
            inverse = registered_inverse
        depth = _SBOX_DEPTH + (2 if inverse is not None else 0)
        stage_depth = (depth + _AFTER_LANE_DEPTH) / self._latency
        cuts = [min(round(stage * stage_depth), depth) for stage in range(1, self._latency)]
        m.d.comb += self.data.eq(_logic_sbox(m, "s", x, inverse, cuts=cuts, enable=self.enable))
        return m


def _sbox_lane(m: Module, name: str, *, kind: str, addr, inverse=None, enable=1,
               latency: int = 1, register_at: str = "input"):
    """An :class:`SboxLane` as submodule ``name`` of ``m``, connected; returns its
    output."""
    lane = SboxLane(kind=kind, inverse=inverse is not None, latency=latency,
                    register_at=register_at)
    m.submodules[name] = lane
    m.d.comb += [lane.addr.eq(addr), lane.enable.eq(enable)]
    if inverse is not None:
        m.d.comb += lane.inverse.eq(inverse)
    return lane.data


# --- The component -------------------------------------------------------------------

class Aes128(wiring.Component):
    """AES-128 on request and response streams (see the module documentation for the
    datapaths, byte order and cycle counts).

    Parameters (keyword-only)
    -------------------------
    datapath : ``"column"`` or ``"round"``
        32 bits per cycle with shared S-boxes (small), or one round per cycle (fast).
    sbox : ``"ram"`` or ``"logic"``
        S-box lanes in RAM blocks (ROMs) or in logic.
    max_ram_blocks : int or None
        With ``sbox="ram"``, at most this many lanes go to RAM and the rest are
        logic (the round datapath has 20 lanes: 4 for the key schedule, then 16
        for the state). None: every lane.
    interleave : 1, 2 or 3
        Round datapath only: blocks in flight. P > 1 makes every S-box lane a
        P-stage pipeline, for a faster clock at the same cycles per block (given
        P requests to work on).
    decrypt : bool
        Add the inverse cipher and a ``decrypt`` flag in the request. False builds
        none of it.

    Ports
    -----
    request : In(stream.Signature(request_layout(decrypt=...)))
        ``block``, ``key`` and (with ``decrypt``) ``decrypt``.
    response : Out(stream.Signature(128))
        The ciphertext (or plaintext), one per request, in request order. As the
        stream contract says, the payload means nothing while ``valid`` is low; the
        column datapath's payload then shows the working state (which just after a
        load is ShiftRows(block ^ key)), so nothing may latch it without ``valid``,
        least of all a register a host can read.
    """

    def __init__(self, *, datapath: str = "column", sbox: str = "ram",
                 max_ram_blocks: "int | None" = None, interleave: int = 1,
                 decrypt: bool = False):
        if datapath not in DATAPATHS:
            raise ValueError(f"datapath must be one of {', '.join(map(repr, DATAPATHS))}, "
                             f"not {datapath!r}")
        if sbox not in SBOXES:
            raise ValueError(f"sbox must be one of {', '.join(map(repr, SBOXES))}, not {sbox!r}")
        if max_ram_blocks is not None:
            if sbox != "ram":
                raise ValueError("max_ram_blocks applies only to sbox='ram'")
            if not isinstance(max_ram_blocks, int) or isinstance(max_ram_blocks, bool) \
                    or max_ram_blocks < 0:
                raise TypeError(f"max_ram_blocks must be a non-negative integer or None, "
                                f"not {max_ram_blocks!r}")
        if interleave not in (1, 2, 3) or isinstance(interleave, bool):
            raise ValueError(f"interleave must be 1, 2 or 3, not {interleave!r}")
        if interleave != 1 and datapath != "round":
            raise ValueError(f"interleave={interleave} needs datapath='round'")
        if not isinstance(decrypt, bool):
            raise TypeError(f"decrypt must be a bool, not {decrypt!r}")
        self._datapath = datapath
        self._sbox = sbox
        self._max_ram_blocks = max_ram_blocks
        self._interleave = interleave
        self._decrypt = decrypt
        super().__init__({
            "request": In(stream.Signature(request_layout(decrypt=decrypt))),
            "response": Out(stream.Signature(128)),
        })

    @property
    def datapath(self) -> str:
        return self._datapath

    @property
    def sbox(self) -> str:
        return self._sbox

    @property
    def max_ram_blocks(self) -> "int | None":
        return self._max_ram_blocks

    @property
    def interleave(self) -> int:
        return self._interleave

    @property
    def decrypt(self) -> bool:
        return self._decrypt

    @property
    def lanes(self) -> int:
        """S-box lanes: 4 (column) or 20 (round)."""
        return 4 if self._datapath == "column" else 20

    @property
    def ram_blocks(self) -> int:
        """S-box lanes placed in RAM blocks (one block each)."""
        if self._sbox == "logic":
            return 0
        if self._max_ram_blocks is None:
            return self.lanes
        return min(self.lanes, self._max_ram_blocks)

    @property
    def cycles_per_block(self) -> int:
        """Clock cycles per block back to back, encrypting (see :func:`cycles_per_block`)."""
        return cycles_per_block(datapath=self._datapath, decrypt=self._decrypt,
                                interleave=self._interleave)

    def _lane_kind(self, lane: int) -> str:
        return "ram" if lane < self.ram_blocks else "logic"

    def elaborate(self, platform):
        if self._datapath == "column":
            return self._elaborate_column()
        return self._elaborate_round()

    # --- Column datapath -------------------------------------------------------------

    def _elaborate_column(self) -> Module:
        """Four S-box lanes, one 32-bit column per cycle, 5 cycles per round.

        A round has phases 0..4. In phases 0..3 the lanes look up column 0..3 of
        the ShiftRows-permuted state; the result, one cycle later, becomes new
        column 0..3 (MixColumns, AddRoundKey) in phases 1..4. In phase 4 the lanes
        look up SubWord(RotWord(w3)) for the key ring, which uses it in phase 0 and
        then makes one new round-key word a cycle in phases 0..3, just before the
        state needs it: AddRoundKey takes word c from the ring's tail in phase
        c + 1.

        How the state is held depends on ``decrypt``:

        * Encryption only: each row is a short shift register that moves every
          cycle of a round, written at one place and read at one or two taps
          placed so that every byte arrives at the S-box in its ShiftRows order
          (:meth:`_column_state_rows`). Every state flip-flop then has at most two
          sources (shift or load), which an iCE40 logic cell's LUT absorbs. The
          load fills the state with ShiftRows(block ^ key) and one cycle goes to
          the first key lookup: 1 + 1 + 10 x 5 = 52 cycles a block.

        * With decryption: a ring of four columns that shifts one column a cycle,
          and on phase 4 applies ShiftRows or InvShiftRows to the whole ring. The
          load puts the block in unchanged and pass 0 adds the first round key
          (round key 10 when decrypting) column by column: 1 + 4 + 50 = 55 cycles
          to encrypt. Decryption first runs the key ring forward for ten rounds
          with the state held (deriving round key 10, 4 + 50 cycles), then pass 0,
          then ten inverse rounds with the key ring running backwards: 110 cycles.
          The backward key step needs the word the ring just dropped, kept in
          ``key_dropped``.
        """
        m = Module()
        decrypt = self._decrypt

        key = [Signal(32, name=f"key{c}", reset_less=True) for c in range(4)]  # key[3]: the tail
        key_dropped = Signal(32, reset_less=True) if decrypt else None

        busy = Signal()
        done = Signal()                 # the result is in the state, offered as response
        phase = Signal(range(5))
        round_number = Signal(range(11))
        ark_pass = Signal()             # before round 1: pass 0 / the first key lookup
        if decrypt:
            decrypting = Signal()
            deriving = Signal()         # decryption's forward run of the key schedule
            inverse_rounds = decrypting & ~deriving
        else:
            deriving = inverse_rounds = Const(0, 1)
        # "This is the last round", registered: the round number changes only at the
        # end of phase 4 and the flag is first needed in phase 1, so a copy one cycle
        # late is right whenever it is used, and takes a decoder off the datapath.
        final_round = Signal()
        m.d.sync += final_round.eq(~ark_pass & ~deriving &
                                   Mux(inverse_rounds, round_number == 1, round_number == 10))

        request = self.request.payload
        can_load = ~busy & (~done | self.response.ready)
        load = can_load & self.request.valid
        m.d.comb += self.request.ready.eq(can_load)
        with m.If(self.response.ready):
            m.d.sync += done.eq(0)

        # S-box lanes: the state in phases 0..3, the key ring in phase 4.
        data_column = Signal(32)
        key_lookup = phase == 4
        if decrypt:
            key_source = Mux(inverse_rounds, key[3] ^ key[2], key[3])
        else:
            key_source = key[3]
        lane_addr = Mux(key_lookup, _rot_word(key_source), data_column)
        lane_inverse = (inverse_rounds & ~key_lookup) if decrypt else None
        substituted = _join([
            _sbox_lane(m, f"sbox{lane}", kind=self._lane_kind(lane),
                       addr=_word_bytes(lane_addr)[lane], inverse=lane_inverse,
                       register_at="output")
            for lane in range(4)])

        # The new column: MixColumns (not in the last round) and AddRoundKey, or
        # with decryption AddRoundKey then InvMixColumns.
        new_column = Signal(32)
        added = substituted ^ key[3]
        if decrypt:
            mixed = _mix_word(m, Mux(inverse_rounds, added, substituted), "mix",
                              inverse=inverse_rounds)
            round_column = Mux(inverse_rounds, mixed, mixed ^ key[3])
            # Pass 0 adds the round key to the unpermuted head column.
            m.d.comb += new_column.eq(Mux(ark_pass, data_column ^ key[3],
                                          Mux(final_round, added, round_column)))
        else:
            round_column = _mix_word(m, substituted, "mix") ^ key[3]
            m.d.comb += new_column.eq(Mux(final_round, added, round_column))

        # The state.
        if decrypt:
            state_enable = load | (busy & ~deriving & ~(ark_pass & (phase == 0)))
            result = self._column_state_ring(m, load=load, enable=state_enable,
                                             block=request.block, read=data_column,
                                             write=new_column,
                                             permute=(phase == 4) & ~final_round,
                                             inverse=inverse_rounds)
        else:
            state_enable = load | (busy & ~ark_pass)
            result = self._column_state_rows(m, load=load, enable=state_enable,
                                             block=request.block ^ request.key,
                                             read=data_column, write=new_column, phase=phase)
        m.d.comb += [self.response.valid.eq(done), self.response.payload.eq(result)]

        # The key ring shifts in phases 0..3, one new word a phase at its tail.
        key_words = _words_of(request.key)
        if decrypt:
            # Pass 0 rotates the ring once a phase from phase 1: load it so that it
            # finds word c at the tail in phase c + 1.
            key_loaded = key_words[1:] + key_words[:1]
            previous_word = Mux(inverse_rounds, key_dropped, key[3])
        else:
            key_loaded = key_words
            previous_word = key[3]
        rcon = _rcon(round_number)
        key_tail = Mux(phase == 0, key[0] ^ substituted ^ Cat(Const(0, 24), rcon),
                       key[0] ^ previous_word)
        if decrypt:
            key_tail = Mux(ark_pass, key[0], key_tail)
        key_enable = load | (busy & (phase != 4))
        with m.If(key_enable):
            m.d.sync += [key[c].eq(Mux(load, key_loaded[c], key[c + 1])) for c in range(3)]
            m.d.sync += key[3].eq(Mux(load, key_loaded[3], key_tail))
            if decrypt:
                m.d.sync += key_dropped.eq(key[0])

        # Sequencing.
        with m.If(load):
            m.d.sync += [busy.eq(1), done.eq(0), ark_pass.eq(1), round_number.eq(0),
                         phase.eq(1 if decrypt else 4)]
            if decrypt:
                m.d.sync += [decrypting.eq(request.decrypt), deriving.eq(request.decrypt)]
        with m.If(busy):
            with m.If(phase == 4):
                m.d.sync += phase.eq(0)
                with m.If(ark_pass):
                    m.d.sync += [ark_pass.eq(0),
                                 round_number.eq(Mux(inverse_rounds, 10, 1))]
                with m.Elif(final_round):
                    m.d.sync += [busy.eq(0), done.eq(1)]
                if decrypt:
                    with m.Elif(deriving & (round_number == 10)):
                        # Round key 10 is in the ring: pass 0 of decryption, which
                        # starts at phase 0 to rotate the ring once.
                        m.d.sync += [deriving.eq(0), ark_pass.eq(1)]
                with m.Else():
                    m.d.sync += round_number.eq(Mux(inverse_rounds, round_number - 1,
                                                    round_number + 1))
            with m.Else():
                m.d.sync += phase.eq(phase + 1)
        return m

    @staticmethod
    def _column_state_rows(m: Module, *, load, enable, block, read, write, phase):
        """The encryption-only state: one shift register per row, all moving every
        cycle of a round (five times a round). Returns the 128-bit state as it
        stands after the last round.

        Byte (i, c) written in phase c + 1 must reach the S-box in the phase p of the
        next round where p + i = c (mod 4): 4, 3 or 7, 6 or 2, 5 or 1 cycles later
        for rows 0..3. Row 0 is a 4-byte shift register read at its head. Row 1 is
        a 4-byte ring written into its third byte (so a byte either reaches the
        head after 3 cycles, or passes round the ring once more). Rows 2 and 3 are
        6- and 5-byte shift registers read at two taps. ``block`` is block ^ key;
        the load places ShiftRows of it where the first round reads it.
        """
        loaded = _bytes_of(block)
        new = _word_bytes(write)

        def at(i, c):
            """Byte (row i, column c) of the loaded block."""
            return loaded[4 * c + i]

        row0 = [Signal(8, name=f"row0_{k}", reset_less=True) for k in range(4)]
        row1 = [Signal(8, name=f"row1_{k}", reset_less=True) for k in range(4)]
        row2 = [Signal(8, name=f"row2_{k}", reset_less=True) for k in range(6)]
        row3 = [Signal(8, name=f"row3_{k}", reset_less=True) for k in range(5)]
        with m.If(enable):
            m.d.sync += [
                *(row0[k].eq(Mux(load, at(0, k), row0[k + 1])) for k in range(3)),
                row0[3].eq(Mux(load, at(0, 3), new[0])),
                row1[0].eq(Mux(load, at(1, 1), row1[1])),
                row1[1].eq(Mux(load, at(1, 2), row1[2])),
                row1[2].eq(Mux(load, at(1, 3), Mux(phase == 0, row1[3], new[1]))),
                row1[3].eq(Mux(load, at(1, 0), row1[0])),
                *(row2[k].eq(row2[k + 1]) for k in range(2)),
                *(row2[k].eq(Mux(load, at(2, k - 2), row2[k + 1])) for k in range(2, 5)),
                row2[5].eq(Mux(load, at(2, 3), new[2])),
                row3[0].eq(row3[1]),
                *(row3[k].eq(Mux(load, at(3, k - 1), row3[k + 1])) for k in range(1, 4)),
                row3[4].eq(Mux(load, at(3, 3), new[3])),
            ]
        m.d.comb += read.eq(_join([row0[0], row1[0], Mux(phase < 2, row2[4], row2[0]),
                                   Mux(phase == 0, row3[4], row3[0])]))
        return _join(_join([row0[c], row1[(c - 1) % 4], row2[2 + c], row3[1 + c]])
                     for c in range(4))

    @staticmethod
    def _column_state_ring(m: Module, *, load, enable, block, read, write, permute, inverse):
        """The state for engines that also decrypt: a ring of four columns. It
        shifts one column a cycle (the head is read, ``write`` enters at the tail)
        and on ``permute`` also applies ShiftRows (InvShiftRows with ``inverse``),
        so each round reads the permuted state column by column. Returns the
        128-bit state."""
        state = [Signal(32, name=f"state{c}", reset_less=True) for c in range(4)]
        shifted = state[1:] + [write]
        shifted_bytes = [b for word in shifted for b in _word_bytes(word)]
        permuted = [_join(_shift_rows(shifted_bytes, inverse=False)[4 * c:4 * c + 4])
                    for c in range(4)]
        unpermuted = [_join(_shift_rows(shifted_bytes, inverse=True)[4 * c:4 * c + 4])
                      for c in range(4)]
        block_words = _words_of(block)
        with m.If(enable):
            m.d.sync += [state[c].eq(Mux(load, block_words[c],
                                         Mux(permute, Mux(inverse, unpermuted[c], permuted[c]),
                                             shifted[c])))
                         for c in range(4)]
        m.d.comb += read.eq(state[0])
        return _join(state)

    # --- Round datapath --------------------------------------------------------------

    def _elaborate_round(self) -> Module:
        """Twenty S-box lanes: one round per cycle (per block in flight).

        The state lives in the lanes' registers (for RAM lanes, the ROM's address
        register). Every cycle one block slot is at the *compute* stage: the data
        lanes deliver SubBytes of its state, and the engine finishes the round
        (ShiftRows, MixColumns, AddRoundKey) and presents the result to the lanes
        again, or a new block (block ^ key) instead. With ``interleave`` P, every
        lane is a P-stage pipeline and P block slots take turns; everything that
        belongs to a slot (its round key, round number, direction) travels in a
        P-stage ring beside the lanes, so slots never meet.

        The key lanes deliver SubWord(RotWord(w3)) of the slot's previous round key.
        With one slot, the round key is computed from it in the compute cycle
        itself. With two or three, it is computed one cycle earlier, at the *key*
        stage, and registered, which takes the key schedule off the compute
        stage's path; a slot that will be free then claims the next request at its
        key stage (so that the new key's first lookup starts in time) and takes it
        in the compute cycle after.

        Control decisions (last round, direction, round constant) are decoded when
        a slot's context is written and travel with it, so that the stages read
        them from flip-flops. A finished block goes to a response register; while
        that is full and not being taken, the whole engine waits. Decryption first
        runs the key schedule forward for ten rounds (the data lanes idle) with the
        request held, then takes the request, loads block ^ round key 10 and runs
        ten inverse rounds while the key schedule runs backwards.
        """
        m = Module()
        decrypt = self._decrypt
        stages = self._interleave
        key_ahead = stages >= 2

        context_layout = data.StructLayout({
            "busy": 1, "decrypting": 1, "deriving": 1, "round": range(11),
            # Decoded from the fields above when the context is written:
            "final": 1,      # this round is the block's last
            "derived": 1,    # decryption: round key 10 is ready, load the block
            "inverse": 1,    # this round runs the key schedule (and S-boxes) backwards
            "free": 1,       # at this compute the slot may take a new block
            "rcon": 8,
            "claimed": 1,    # the slot claimed the request at its key stage
        })

        def write_context(context, *, busy, decrypting, deriving, round_number, claimed=0):
            return [
                context.busy.eq(busy), context.decrypting.eq(decrypting),
                context.deriving.eq(deriving), context.round.eq(round_number),
                context.final.eq(busy & ~deriving & Mux(decrypting, round_number == 1,
                                                        round_number == 10)),
                context.derived.eq(busy & deriving & (round_number == 10)),
                context.inverse.eq(busy & decrypting & ~deriving),
                context.free.eq(~busy | ~deriving & Mux(decrypting, round_number == 1,
                                                        round_number == 10)),
                context.rcon.eq(_rcon(round_number)),
                context.claimed.eq(claimed),
            ]

        advance = Signal()
        contexts = [Signal(context_layout, name=f"context{stage}", init={"free": 1})
                    for stage in range(stages)]
        keys = [Signal(128, name=f"round_key{stage}", reset_less=True) for stage in range(stages)]
        context, key = contexts[-1], keys[-1]          # the compute stage

        # Lanes.
        data_addr = Signal(128)
        key_addr = Signal(32)
        data_inverse = Signal() if decrypt else None
        key_lanes = [_sbox_lane(m, f"key_sbox{lane}", kind=self._lane_kind(lane),
                                addr=_word_bytes(key_addr)[lane], enable=advance,
                                latency=stages)
                     for lane in range(4)]
        data_lanes = [_sbox_lane(m, f"sbox{n}", kind=self._lane_kind(4 + n),
                                 addr=_bytes_of(data_addr)[n], inverse=data_inverse,
                                 enable=advance, latency=stages)
                      for n in range(16)]
        substituted = _join(key_lanes)

        def key_step(previous, step_context):
            words = _words_of(previous)
            forward = _join(_key_step_forward(words, substituted, step_context.rcon))
            if not decrypt:
                return forward
            backward = _join(_key_step_inverse(words, substituted, step_context.rcon))
            return Mux(step_context.inverse, backward, forward)

        def lookup(next_key, inverse):
            words = _words_of(next_key)
            if decrypt:
                return _rot_word(words[3] ^ Mux(inverse, words[2], 0))
            return _rot_word(words[3])

        # Requests. A decryption claims the request while it derives its last round
        # key; the request is taken (and its block loaded) only then.
        request = self.request.payload
        claimed = Signal()
        request_decrypts = request.decrypt if decrypt else Const(0, 1)
        if key_ahead:
            key_context = contexts[-2]
            round_key = Signal(128)
            m.d.comb += round_key.eq(key_step(keys[-2], key_context))
            claim = advance & key_context.free & self.request.valid & ~claimed
            next_lookup = Mux(claim, request.key, round_key)
            lookup_inverse = ~claim & (key_context.derived |
                                       (key_context.inverse & ~key_context.final))
            m.d.comb += key_addr.eq(lookup(next_lookup, lookup_inverse))
            with m.If(advance):
                m.d.sync += [contexts[-1].eq(key_context), contexts[-1].claimed.eq(claim),
                             keys[-1].eq(round_key)]
            with m.If(claim):
                m.d.sync += claimed.eq(1)
            starting = context.claimed
        else:
            round_key = Signal(128)
            m.d.comb += round_key.eq(key_step(key, context))
            starting = advance & context.free & self.request.valid & ~claimed
        start_encrypt = starting & ~request_decrypts
        start_decrypt = starting & request_decrypts
        load_block = start_encrypt | context.derived
        accept = advance & load_block
        m.d.comb += self.request.ready.eq(accept)
        with m.If(accept):
            m.d.sync += claimed.eq(0)
        if decrypt and not key_ahead:
            with m.If(advance & start_decrypt):
                m.d.sync += claimed.eq(1)
        ark_key = round_key if not key_ahead else key   # the round key of this round

        # Finish the round.
        shifted = _join(_shift_rows(data_lanes, inverse=False))
        if decrypt:
            unshifted = _join(_shift_rows(data_lanes, inverse=True))
            shifted = Mux(context.inverse, unshifted, shifted)
        added = shifted ^ ark_key
        if decrypt:
            mix_input = Mux(context.inverse, added, shifted)
            mixed = _join([_mix_word(m, word, f"mix{c}", inverse=context.inverse)
                           for c, word in enumerate(_words_of(mix_input))])
            round_result = Mux(context.inverse, mixed, mixed ^ ark_key)
            # An encryption starting as the slot's last block finishes uses the new
            # key; a decryption's load uses round key 10.
            load_key = Mux(start_encrypt, request.key, ark_key)
        else:
            round_result = _join([_mix_word(m, word, f"mix{c}")
                                  for c, word in enumerate(_words_of(shifted))]) ^ ark_key
            load_key = request.key
        m.d.comb += data_addr.eq(Mux(load_block, request.block ^ load_key, round_result))

        # The slot's next context, and its key for the next round's key step.
        next_context = Signal(context_layout)
        round_number = context.round
        with m.If(start_encrypt):
            m.d.comb += write_context(next_context, busy=1, decrypting=0, deriving=0,
                                      round_number=1)
        with m.Elif(start_decrypt):
            m.d.comb += write_context(next_context, busy=1, decrypting=1, deriving=1,
                                      round_number=1)
        with m.Elif(context.derived):
            # Round key 10 is ready: the inverse rounds count down from 10.
            m.d.comb += write_context(next_context, busy=1, decrypting=1, deriving=0,
                                      round_number=10)
        with m.Elif(context.final | ~context.busy):
            m.d.comb += write_context(next_context, busy=0, decrypting=0, deriving=0,
                                      round_number=0)
        with m.Else():
            m.d.comb += write_context(
                next_context, busy=1, decrypting=context.decrypting, deriving=context.deriving,
                round_number=Mux(context.inverse, round_number - 1, round_number + 1))
        next_key = Mux(start_encrypt | start_decrypt, request.key, ark_key)
        if decrypt:
            m.d.comb += data_inverse.eq(next_context.inverse)
        if not key_ahead:
            m.d.comb += key_addr.eq(lookup(next_key, next_context.inverse))

        with m.If(advance):
            m.d.sync += [contexts[0].eq(next_context), keys[0].eq(next_key)]
            # Plain stages between the compute stage and the key stage (P = 3).
            for stage in range(1, stages - 1):
                m.d.sync += [contexts[stage].eq(contexts[stage - 1]),
                             keys[stage].eq(keys[stage - 1])]

        # The response register; the engine waits while it is full and not taken.
        response_valid = Signal()
        response_data = Signal(128, reset_less=True)
        m.d.comb += [
            self.response.valid.eq(response_valid),
            self.response.payload.eq(response_data),
            advance.eq(~(context.final & response_valid & ~self.response.ready)),
        ]
        with m.If(self.response.ready):
            m.d.sync += response_valid.eq(0)
        with m.If(advance & context.final):
            m.d.sync += [response_valid.eq(1), response_data.eq(added)]
        return m
