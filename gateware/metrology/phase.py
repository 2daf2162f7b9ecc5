"""One phase of metrology: DC removal, phase compensation, power and RMS sums,
and energy quanta, as :mod:`.spec` defines them.

The arithmetic runs word-serially on 16 bits: the phase's state lives in a scratchpad
RAM of 64 words read on two ports, one 16-bit adder with a carry flag walks each
multi-word value a word per cycle, and a microprogram in a ROM sequences it. Products
use the same adder, one shift-and-add pass per multiplier bit, so the phase has no
multiplier and no wide adder or comparator: it takes :data:`CYCLES_PER_SAMPLE_SET`
(652) cycles of the 1,500 there are between sample sets at 8 kSPS and 12 MHz, in a
fraction of the logic cells a parallel datapath needs (on the iCE40: about 400 LUTs,
400 flip-flops, most of them the published results, and five RAM blocks).

The datapath, its microinstruction, a small assembler and the microprogram are all
in this file; ``_PROGRAM.listing()`` prints the assembled microcode.
"""

from dataclasses import dataclass, field, replace

from amaranth.hdl import Cat, Module, Mux, ResetSignal, Signal, signed
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from . import spec

__all__ = ["PhaseSample", "WindowSums", "PhaseMetrology", "CYCLES_PER_SAMPLE_SET"]

#: One simultaneous voltage and current sample, ADC codes.
PhaseSample = data.StructLayout({
    "voltage": signed(spec.SAMPLE_WIDTH),
    "current": signed(spec.SAMPLE_WIDTH),
})

#: What a phase publishes at the end of each window (raw units: codes, codes²).
WindowSums = data.StructLayout({
    "active": signed(spec.SUM_WIDTH),          # sum of v*i
    "voltage_squared": spec.SUM_WIDTH,         # sum of v*v
    "current_squared": spec.SUM_WIDTH,         # sum of i*i
})

#: Datapath width, bits: multi-word values are kept little-endian, sign-extended.
_WORD = 16
#: Words of a window sum (61 bits) and of the energy fraction (62 bits, 64 inside).
_LONG = 4


# --- The microinstruction ------------------------------------------------------------------
#
# Every cycle executes one microinstruction:
#
#     result = A + B + carry_in       (16 bits; the carry out is kept for the next word)
#
# A is the word read from scratchpad port A, passed, shifted left by one (shifting in
# the top bit of the previous cycle's A word when the carry chains, else 0), inverted
# or zero. B is one of the sources below, ANDed with a gate bit and optionally
# inverted. The result goes to a scratchpad word (word 0 is junk, for instructions
# that want only a flag or a destination) and may update a destination register.
#
# Scratchpad reads are registered: the words an instruction reads are addressed one
# cycle earlier, so each microword carries the read addresses of the instruction
# after it (the assembler moves them there), and an instruction must not read the
# word the one before it writes (the assembler checks; the RAM's behaviour for a read
# and a write of one word in one cycle is left undefined, which keeps it small).

class _Operand(enum.Enum, shape=2):
    """What the adder's A input makes of the word from scratchpad port A."""
    PASS = 0
    SHIFT = 1       # shifted left by one bit
    INVERT = 2
    ZERO = 3


class _Source(enum.Enum, shape=4):
    """What the adder's B input takes."""
    ZERO = 0
    SIGN = 1             # the last B word's sign in every bit (gate and invert ignored)
    RAM = 2              # the word read from scratchpad port B
    QUEUE = 3            # the bottom word of the queue register
    QUANTUM_0 = 4        # energy_quantum, word 0 ...
    QUANTUM_1 = 5
    QUANTUM_2 = 6
    QUANTUM_3 = 7
    THRESHOLD_0 = 8      # noload_threshold, word 0 ...
    THRESHOLD_1 = 9
    THRESHOLD_2 = 10
    THRESHOLD_3 = 11
    COEFFICIENT_0 = 12   # phase_coefficient << 15, word 0; its words 2 and 3 are SIGN
    COEFFICIENT_1 = 13
    WINDOW = 14          # window_samples
    SAMPLE_MAX_HIGH = 15  # 0x007F, the high word of spec.SAMPLE_MAX


class _Gate(enum.Enum, shape=2):
    """The bit B is ANDed with."""
    NONE = 0
    MULTIPLIER = 1       # the multiplier bit of this multiplication step
    RUNNING = 2          # the energy gate (open unless the last window had no load)


class _Carry(enum.Enum, shape=2):
    """Carry into the adder; ``CHAIN`` also shifts the last A word's top bit into A."""
    ZERO = 0
    ONE = 1
    CHAIN = 2


class _Flag(enum.Enum, shape=2):
    """The flag that takes the result's sign bit."""
    NONE = 0
    FIRST = 1
    SECOND = 2
    WINDOW_END = 3


class _Condition(enum.Enum, shape=2):
    """When the scratchpad write and the destination take effect."""
    ALWAYS = 0
    FIRST = 1
    SECOND_NOT_FIRST = 2
    WINDOW_END = 3


class _Destination(enum.Enum, shape=3):
    """The register an instruction updates besides the scratchpad."""
    NONE = 0
    QUEUE = 1            # the queue shifts down a word; the result enters at the top
    FRACTION = 2         # publish energy_fraction (queue words 1..3, result) and count quanta
    WINDOW = 3           # the published window sums shift down a word; the result enters on top
    WINDOW_DONE = 4
    RUNNING = 5          # the energy gate becomes FIRST | SECOND
    MULTIPLIER_BIT = 6   # bit 8 of the A word (bit 24 of a two-word multiplier)


class _Control(enum.Enum, shape=3):
    NEXT = 0
    WAIT = 1             # ready: wait for a sample set and load it into the queue
    LOOP = 2             # if the loop counter is not zero, decrement it and go to target
    SET_LOOP = 3         # loop counter = target
    JUMP = 4


_ADDRESS = 6             # scratchpad address, bits
_PROGRAM_DEPTH = 256
_Microword = data.StructLayout({
    "read_a": _ADDRESS,  # scratchpad words read for the *next* instruction
    "read_b": _ADDRESS,
    "write": _ADDRESS,
    "a": _Operand,
    "b": _Source,
    "invert_b": 1,
    "gate": _Gate,
    "carry": _Carry,
    "flag": _Flag,
    "condition": _Condition,
    "destination": _Destination,
    "control": _Control,
    "target": 8,
})


# --- The assembler -------------------------------------------------------------------------

@dataclass(frozen=True)
class _Instruction:
    read_a: int | None = None    # scratchpad word A is read from (None: not read)
    operand: _Operand = _Operand.ZERO
    source: _Source = _Source.ZERO
    read_b: int | None = None    # scratchpad word B is read from, for _Source.RAM
    invert_b: bool = False
    gate: _Gate = _Gate.NONE
    carry: _Carry = _Carry.ZERO
    write: int = 0
    flag: _Flag = _Flag.NONE
    condition: _Condition = _Condition.ALWAYS
    destination: _Destination = _Destination.NONE
    control: _Control = _Control.NEXT
    target: int | str = 0        # a number, or a label for LOOP and JUMP

    def __str__(self) -> str:
        a = {_Operand.ZERO: "0", _Operand.PASS: f"[{self.read_a}]",
             _Operand.SHIFT: f"[{self.read_a}]<<1", _Operand.INVERT: f"~[{self.read_a}]"}
        b = f"[{self.read_b}]" if self.source is _Source.RAM else self.source.name
        text = (f"{a[self.operand]} + {'~' if self.invert_b else ''}{b}"
                f"{'' if self.gate is _Gate.NONE else '&' + self.gate.name}"
                f" + {self.carry.name} -> [{self.write}]")
        extras = [f"if {self.condition.name}" * (self.condition is not _Condition.ALWAYS),
                  f"flag {self.flag.name}" * (self.flag is not _Flag.NONE),
                  f"to {self.destination.name}" * (self.destination is not _Destination.NONE),
                  f"{self.control.name} {self.target}" * (self.control is not _Control.NEXT)]
        return "  ".join([text] + [extra for extra in extras if extra])


@dataclass
class _Program:
    """A microprogram under construction; :meth:`assemble` makes it ROM words."""

    instructions: list = field(default_factory=list)
    labels: dict = field(default_factory=dict)

    def label(self, name: str) -> None:
        self.labels[name] = len(self.instructions)

    def op(self, a=None, *, operand=None, b=_Source.ZERO, b_word=None, **fields) -> None:
        """Append an instruction reading ``a`` on port A (passed unless ``operand``
        says otherwise; zero when ``a`` is None) and ``b_word`` on port B."""
        if b_word is not None:
            b = _Source.RAM
        if operand is None:
            operand = _Operand.ZERO if a is None else _Operand.PASS
        self.instructions.append(_Instruction(read_a=a, operand=operand, source=b,
                                              read_b=b_word, **fields))

    def assemble(self) -> tuple[list[dict], int]:
        """Resolve labels, give each microword its successors' read addresses, check
        the read-after-write rule; return the ROM words and the cycles per sample set."""
        code = list(self.instructions)
        labels = dict(self.labels)
        # A loop's last word addresses the reads of both its successors; where these
        # differ, a no-operation after the loop takes the reads of the one after it.
        index = 0
        while index < len(code):
            if code[index].control is _Control.LOOP and index + 1 < len(code):
                target, after = code[labels[code[index].target]], code[index + 1]
                if not (_compatible(target.read_a, after.read_a)
                        and _compatible(target.read_b, after.read_b)):
                    code.insert(index + 1, _Instruction())
                    labels = {name: at + (at > index) for name, at in labels.items()}
            index += 1
        code = [replace(i, target=labels[i.target]) if isinstance(i.target, str) else i
                for i in code]
        if len(code) > _PROGRAM_DEPTH:
            raise ValueError(f"The microprogram's {len(code)} words exceed {_PROGRAM_DEPTH}")

        words = []
        for index, instruction in enumerate(code):
            successors = _successors(code, index)
            reads_a = {code[s].read_a for s in successors} - {None}
            reads_b = {code[s].read_b for s in successors} - {None}
            if len(reads_a) > 1 or len(reads_b) > 1:
                raise ValueError(f"The successors of microword {index} read different words")
            for s in successors:
                if instruction.write and instruction.write in (code[s].read_a, code[s].read_b):
                    raise ValueError(f"Microword {s} reads word {instruction.write}, "
                                     f"which microword {index} before it writes")
            words.append({
                "read_a": reads_a.pop() if reads_a else 0,
                "read_b": reads_b.pop() if reads_b else 0,
                "write": instruction.write, "a": instruction.operand,
                "b": instruction.source, "invert_b": int(instruction.invert_b),
                "gate": instruction.gate, "carry": instruction.carry,
                "flag": instruction.flag, "condition": instruction.condition,
                "destination": instruction.destination, "control": instruction.control,
                "target": instruction.target,
            })
        self.code = code
        return words, _cycles_per_sample_set(code)

    def listing(self) -> str:
        """The assembled microcode, one instruction a line."""
        return "\n".join(f"{index:3}  {instruction}" for index, instruction in enumerate(self.code))


def _compatible(a, b) -> bool:
    return a is None or b is None or a == b


def _successors(code, index) -> list[int]:
    instruction = code[index]
    successors = []
    if instruction.control is not _Control.JUMP:
        successors.append(index + 1)
    if instruction.control in (_Control.LOOP, _Control.JUMP):
        successors.append(instruction.target)
    if instruction.control is _Control.WAIT:
        successors.append(index)
    return [s for s in successors if s < len(code)]


def _cycles_per_sample_set(code) -> int:
    """Cycles from one accepted sample set to the next, by running the control flow."""
    pc = next(index for index, i in enumerate(code) if i.control is _Control.WAIT)
    cycles, loops = 0, 0
    while True:
        instruction = code[pc]
        cycles += 1
        if instruction.control is _Control.SET_LOOP:
            loops = instruction.target
        if instruction.control is _Control.LOOP and loops:
            loops -= 1
            pc = instruction.target
        elif instruction.control is _Control.JUMP:
            return cycles
        else:
            pc += 1


# --- The microprogram ----------------------------------------------------------------------

class _Scratchpad:
    """Allocates named scratchpad words; word 0 is junk."""

    def __init__(self):
        self._next = 1
        self.state = []

    def words(self, count: int, *, state: bool = False) -> list[int]:
        words = list(range(self._next, self._next + count))
        self._next += count
        if self._next > 1 << _ADDRESS:
            raise ValueError("The scratchpad is full")
        if state:
            self.state += words
        return words


def _chain(k: int, first: _Carry = _Carry.ZERO) -> _Carry:
    """Carry for word ``k`` of a multi-word operation."""
    return first if k == 0 else _Carry.CHAIN


def _build_program() -> _Program:
    ram = _Scratchpad()
    # The phase's state, cleared after reset like the registers it replaces.
    dc_voltage = ram.words(3, state=True)          # dc << 2: dc >> 14 is words 1..2
    dc_current = ram.words(3, state=True)
    voltage_delayed = ram.words(2, state=True)     # v_d
    current_previous = ram.words(2, state=True)    # i_ac of the last sample set
    current_compensated = ram.words(2, state=True)  # i_c
    sum_active = ram.words(_LONG, state=True)
    sum_voltage = ram.words(_LONG, state=True)
    sum_current = ram.words(_LONG, state=True)
    (count,) = ram.words(1, state=True)
    energy = ram.words(_LONG, state=True)          # E, the energy fraction
    # Scratch, valid within a sample set.
    voltage = ram.words(2)            # v_ac (ac before saturation)
    current = ram.words(2)            # i_ac
    voltage_step = ram.words(2)       # 4 * ac, to add to dc << 2
    current_step = ram.words(2)
    multiplier = ram.words(2)         # shifted left a bit per multiplication step
    product = ram.words(4)
    below = ram.words(_LONG)          # ~value + bound = bound - value - 1
    above = ram.words(_LONG)          # value + bound

    program = _Program()
    op = program.op
    # Word 0 is all zeros: what the ROM's output register holds at power-up and while
    # in reset, so it is the first instruction executed either way.
    op()
    for word in ram.state:
        op(write=word)
    program.label("wait")
    op(control=_Control.WAIT)

    # DC removal: ac = x - (dc >> 14); dc += ac. The queue register holds the sample
    # set as four sign-extended words, voltage first, and shifts a word down per use.
    for dc, ac in ((dc_voltage, voltage), (dc_current, current)):
        for k in range(2):
            op(dc[1 + k], operand=_Operand.INVERT, b=_Source.QUEUE, carry=_chain(k, _Carry.ONE),
               write=ac[k], destination=_Destination.QUEUE)
    for ac, step in ((voltage, voltage_step), (current, current_step)):
        for k in range(2):
            op(ac[k], operand=_Operand.SHIFT, carry=_chain(k), write=step[k])
    for step in (voltage_step, current_step):
        for k in range(2):
            op(step[k], operand=_Operand.SHIFT, carry=_chain(k), write=step[k])
    for dc, step in ((dc_voltage, voltage_step), (dc_current, current_step)):
        for k in range(3):
            op(dc[k], b_word=step[k] if k < 2 else None, b=_Source.SIGN, carry=_chain(k),
               write=dc[k])

    def saturate(value):
        # FIRST: value > SAMPLE_MAX, as SAMPLE_MAX - value < 0; SECOND: value < -SAMPLE_MAX.
        op(value[0], operand=_Operand.INVERT, invert_b=True, carry=_Carry.ONE)
        op(value[1], operand=_Operand.INVERT, b=_Source.SAMPLE_MAX_HIGH, carry=_Carry.CHAIN,
           flag=_Flag.FIRST)
        op(value[0], invert_b=True)
        op(value[1], b=_Source.SAMPLE_MAX_HIGH, carry=_Carry.CHAIN, flag=_Flag.SECOND)
        op(invert_b=True, write=value[0], condition=_Condition.FIRST)
        op(b=_Source.SAMPLE_MAX_HIGH, write=value[1], condition=_Condition.FIRST)
        op(carry=_Carry.ONE, write=value[0], condition=_Condition.SECOND_NOT_FIRST)
        op(b=_Source.SAMPLE_MAX_HIGH, invert_b=True, carry=_Carry.CHAIN, write=value[1],
           condition=_Condition.SECOND_NOT_FIRST)

    saturate(voltage)
    saturate(current)

    def multiply(name, multiplicand, product_words, steps):
        """product = multiplicand * multiplier, taking ``steps`` bits of the multiplier
        from its bit 24 down, MSB first: product = 2 * product + bit * multiplicand,
        the first (sign) bit subtracting. ``multiplicand(k)`` gives the B operand of
        product word ``k``."""
        def next_multiplier_bit():
            op(multiplier[0], operand=_Operand.SHIFT, write=multiplier[0])
            op(multiplier[1], operand=_Operand.SHIFT, carry=_Carry.CHAIN, write=multiplier[1],
               destination=_Destination.MULTIPLIER_BIT)
        next_multiplier_bit()
        for k, word in enumerate(product_words):
            last = k == len(product_words) - 1
            op(**multiplicand(k), gate=_Gate.MULTIPLIER, invert_b=True,
               carry=_chain(k, _Carry.ONE), write=word,
               control=_Control.SET_LOOP if last else _Control.NEXT,
               target=steps - 2 if last else 0)
        program.label(name)
        next_multiplier_bit()
        for k, word in enumerate(product_words):
            last = k == len(product_words) - 1
            op(word, operand=_Operand.SHIFT, **multiplicand(k), gate=_Gate.MULTIPLIER,
               carry=_chain(k), write=word,
               control=_Control.LOOP if last else _Control.NEXT, target=name if last else 0)

    # Phase compensation: i_c = sat(i_prev + (a * (i_ac - i_c)) >> 17). With the
    # multiplicand a << 15, the shift by 17 is taking the product's words 2 and 3.
    op(current[0], b_word=current_compensated[0], invert_b=True, carry=_Carry.ONE,
       write=multiplier[0])
    op(current[1], b_word=current_compensated[1], invert_b=True, carry=_Carry.CHAIN,
       write=multiplier[1])
    coefficient = (_Source.COEFFICIENT_0, _Source.COEFFICIENT_1, _Source.SIGN, _Source.SIGN)
    multiply("phase", lambda k: {"b": coefficient[k]}, product, steps=25)
    op(current_previous[0], b_word=product[2], write=current_compensated[0])
    op(current_previous[1], b_word=product[3], carry=_Carry.CHAIN, write=current_compensated[1])
    saturate(current_compensated)

    def accumulate_product(name, x, y, total):
        """total += x * y, for saturated 24-bit x and y."""
        # The multiplier is 2 * y, so that its 24 bits are taken from bit 24 down.
        op(y[0], operand=_Operand.SHIFT, write=multiplier[0])
        op(y[1], operand=_Operand.SHIFT, carry=_Carry.CHAIN, write=multiplier[1])
        multiply(name, lambda k: {"b_word": x[k]} if k < 2 else {"b": _Source.SIGN},
                 product[:3], steps=24)
        for k in range(_LONG):
            op(total[k], b_word=product[k] if k < 3 else None, b=_Source.SIGN,
               carry=_chain(k), write=total[k])

    accumulate_product("active", voltage_delayed, current_compensated, sum_active)
    # Energy: e = E + p while the gate is open; e >= Q counts an import quantum and
    # leaves e - Q, else e <= -Q counts an export quantum and leaves e + Q.
    for k in range(_LONG):
        op(energy[k], b_word=product[k] if k < 3 else None, b=_Source.SIGN,
           gate=_Gate.RUNNING, carry=_chain(k), write=energy[k])
    quantum = [_Source(_Source.QUANTUM_0.value + k) for k in range(_LONG)]
    for k in range(_LONG):                    # FIRST: e >= Q, and ~below = e - Q
        op(energy[k], operand=_Operand.INVERT, b=quantum[k], carry=_chain(k), write=below[k],
           flag=_Flag.FIRST if k == _LONG - 1 else _Flag.NONE)
    for k in range(_LONG):
        op(energy[k], b=quantum[k], carry=_chain(k), write=above[k])
    for k in range(_LONG):                    # SECOND: e + Q - 1 < 0, that is e <= -Q
        op(above[k], invert_b=True, carry=_chain(k),
           flag=_Flag.SECOND if k == _LONG - 1 else _Flag.NONE)
    for k in range(_LONG):
        op(below[k], operand=_Operand.INVERT, write=energy[k], condition=_Condition.FIRST)
    for k in range(_LONG):
        op(above[k], write=energy[k], condition=_Condition.SECOND_NOT_FIRST)
    # Published in one cycle: three words gather in the queue, the fourth comes along.
    for k in range(_LONG):
        op(energy[k], destination=_Destination.QUEUE if k < _LONG - 1 else _Destination.FRACTION)

    accumulate_product("voltage", voltage_delayed, voltage_delayed, sum_voltage)
    accumulate_product("current", current_compensated, current_compensated, sum_current)

    # Window: count + 1 >= window_samples ends it; its sums are published and cleared,
    # and |sum of v*i| >= noload_threshold decides the gate for the next.
    op(count, carry=_Carry.ONE, write=count)
    threshold = [_Source(_Source.THRESHOLD_0.value + k) for k in range(_LONG)]
    for k in range(_LONG):                    # FIRST: sum >= threshold
        op(sum_active[k], operand=_Operand.INVERT, b=threshold[k], carry=_chain(k),
           flag=_Flag.FIRST if k == _LONG - 1 else _Flag.NONE)
    op(count, operand=_Operand.INVERT, b=_Source.WINDOW, flag=_Flag.WINDOW_END)
    for k in range(_LONG):
        op(sum_active[k], b=threshold[k], carry=_chain(k), write=above[k])
    for k in range(_LONG):                    # SECOND: sum <= -threshold
        op(above[k], invert_b=True, carry=_chain(k),
           flag=_Flag.SECOND if k == _LONG - 1 else _Flag.NONE)
    op(destination=_Destination.RUNNING, condition=_Condition.WINDOW_END)
    op(write=count, condition=_Condition.WINDOW_END)
    for total in (sum_active, sum_voltage, sum_current):
        for word in total:
            op(word, destination=_Destination.WINDOW, condition=_Condition.WINDOW_END)
    for total in (sum_active, sum_voltage, sum_current):
        for word in total:
            op(write=word, condition=_Condition.WINDOW_END)
    op(destination=_Destination.WINDOW_DONE, condition=_Condition.WINDOW_END)

    # This sample set's v_ac and i_ac are the next one's v_d and i_prev.
    op(voltage[0], write=voltage_delayed[0])
    op(voltage[1], write=voltage_delayed[1])
    op(current[0], write=current_previous[0])
    op(current[1], write=current_previous[1], control=_Control.JUMP, target="wait")
    return program


_PROGRAM = _build_program()
_MICROCODE, _CYCLES = _PROGRAM.assemble()
#: Clock cycles :class:`PhaseMetrology` takes per sample set, whatever the data.
CYCLES_PER_SAMPLE_SET = _CYCLES


def _sign_extend(value):
    return Cat(value, value[-1].replicate(_WORD - len(value)))


class PhaseMetrology(wiring.Component):
    """The metrology of one phase.

    Takes 652 cycles (:data:`CYCLES_PER_SAMPLE_SET`) per sample set, whatever the
    data, so phases started together stay in step; ``sample.ready`` is low meanwhile.
    That is well within the 1,500 cycles between sets at 8 kSPS and 12 MHz. After
    reset it clears its state and is first ready 30 cycles later.

    Attributes
    ----------
    sample : stream in
        Voltage and current codes, signed 24-bit.
    phase_coefficient : Signal(signed(18)), in
        All-pass coefficient ``a`` (Q1.17) for the current channel.
    energy_quantum : Signal(60), in
        Raw units (codes² samples) per energy quantum; calibration sets it so a
        quantum is 1 Wh.
    noload_threshold : Signal(60), in
        A window whose |sum of v*i| is below this closes the energy gate for the next.
    window_samples : Signal(13), in
        Samples per window.
    window : WindowSums, out
        The last window's sums, complete when ``window_done`` pulses. They are
        published a 16-bit word a cycle in the 12 cycles before the pulse, so a read
        in those cycles can mix two windows; a change in the count of pulses across
        the read shows it.
    import_quanta, export_quanta : Signal(32), out
        Energy quanta counted (wrap).
    energy_fraction : Signal(signed(62)), out
        The energy not yet counted as a quantum, raw units. Updated in one cycle,
        together with the quantum counts.
    quantum : Signal(), out
        Pulses with every quantum counted, import or export (the test LED).
    """

    sample: In(stream.Signature(PhaseSample))
    phase_coefficient: In(signed(spec.PHASE_COEFFICIENT_WIDTH))
    energy_quantum: In(spec.QUANTUM_WIDTH)
    noload_threshold: In(spec.QUANTUM_WIDTH)
    window_samples: In(spec.WINDOW_WIDTH)
    window: Out(WindowSums)
    window_done: Out(1)
    import_quanta: Out(spec.COUNTER_WIDTH)
    export_quanta: Out(spec.COUNTER_WIDTH)
    energy_fraction: Out(signed(spec.FRACTION_WIDTH))
    quantum: Out(1)

    def elaborate(self, platform):
        m = Module()

        # Sequencer. The ROM is read at the next pc, so its output `op` is the
        # instruction at `pc`. In reset it is read at 0, so the first instruction after
        # reset is the one at pc 0 however long the reset was.
        m.submodules.microcode = microcode = Memory(
            shape=_Microword, depth=_PROGRAM_DEPTH, init=_MICROCODE)
        fetch = microcode.read_port()
        op = fetch.data
        pc = Signal(8)
        loops = Signal(5)
        next_pc = Signal(8)
        m.d.comb += next_pc.eq(pc + 1)
        with m.Switch(op.control):
            with m.Case(_Control.WAIT):
                m.d.comb += self.sample.ready.eq(1)
                with m.If(~self.sample.valid):
                    m.d.comb += next_pc.eq(pc)
            with m.Case(_Control.LOOP):
                with m.If(loops != 0):
                    m.d.comb += next_pc.eq(op.target)
                    m.d.sync += loops.eq(loops - 1)
            with m.Case(_Control.SET_LOOP):
                m.d.sync += loops.eq(op.target)
            with m.Case(_Control.JUMP):
                m.d.comb += next_pc.eq(op.target)
        m.d.comb += fetch.addr.eq(Mux(ResetSignal(allow_reset_less=True), 0, next_pc))
        m.d.sync += pc.eq(next_pc)

        # Scratchpad: one RAM with two read ports (two block RAMs, written alike). It is
        # read combinationally into reset-less registers, which Yosys folds into the
        # block RAMs; with `no_rw_check` it does so without the logic that would give a
        # same-cycle read and write of one word a defined result (the program never
        # does that). Synchronous read ports would come with that logic.
        m.submodules.scratchpad = scratchpad = Memory(
            shape=_WORD, depth=1 << _ADDRESS, init=[], attrs={"no_rw_check": 1})
        write = scratchpad.write_port()
        port_a = scratchpad.read_port(domain="comb")
        port_b = scratchpad.read_port(domain="comb")
        word_a = Signal(_WORD, reset_less=True)
        word_b = Signal(_WORD, reset_less=True)
        m.d.comb += [port_a.addr.eq(op.read_a), port_b.addr.eq(op.read_b)]
        m.d.sync += [word_a.eq(port_a.data), word_b.eq(port_b.data)]

        carry = Signal()             # out of the last word
        shifted_out = Signal()       # the last A word's top bit
        sign = Signal()              # the last B word's top bit
        multiplier_bit = Signal()
        first = Signal()
        second = Signal()
        window_end = Signal()
        running = Signal(init=1)     # the energy gate
        # The queue: a sample set enters in one cycle, as four sign-extended words, and
        # leaves a word per use; the energy fraction's words gather in it for publication.
        queue = Signal(4 * _WORD)
        # The published window sums, a word apart: active, voltage², current².
        window = Signal(3 * _LONG * _WORD)

        # The adder: A + B + carry_in as one carry chain.
        carry_in = Signal()
        with m.Switch(op.carry):
            with m.Case(_Carry.ONE):
                m.d.comb += carry_in.eq(1)
            with m.Case(_Carry.CHAIN):
                m.d.comb += carry_in.eq(carry)
        a = Signal(_WORD)
        with m.Switch(op.a):
            with m.Case(_Operand.PASS):
                m.d.comb += a.eq(word_a)
            with m.Case(_Operand.SHIFT):
                m.d.comb += a.eq(Cat((op.carry == _Carry.CHAIN) & shifted_out, word_a[:-1]))
            with m.Case(_Operand.INVERT):
                m.d.comb += a.eq(~word_a)

        coefficient = self.phase_coefficient
        source = Signal(_WORD)
        with m.Switch(op.b):
            with m.Case(_Source.RAM):
                m.d.comb += source.eq(word_b)
            with m.Case(_Source.QUEUE):
                m.d.comb += source.eq(queue[:_WORD])
            for k in range(_LONG):
                with m.Case(_Source.QUANTUM_0.value + k):
                    m.d.comb += source.eq(self.energy_quantum.word_select(k, _WORD))
                with m.Case(_Source.THRESHOLD_0.value + k):
                    m.d.comb += source.eq(self.noload_threshold.word_select(k, _WORD))
            with m.Case(_Source.COEFFICIENT_0):
                m.d.comb += source.eq(coefficient[0] << (_WORD - 1))
            with m.Case(_Source.COEFFICIENT_1):
                m.d.comb += source.eq(coefficient[1:_WORD + 1])
            with m.Case(_Source.WINDOW):
                m.d.comb += source.eq(self.window_samples)
            with m.Case(_Source.SAMPLE_MAX_HIGH):
                m.d.comb += source.eq(spec.SAMPLE_MAX >> _WORD)
        gate = Signal()
        with m.Switch(op.gate):
            with m.Case(_Gate.NONE):
                m.d.comb += gate.eq(1)
            with m.Case(_Gate.MULTIPLIER):
                m.d.comb += gate.eq(multiplier_bit)
            with m.Case(_Gate.RUNNING):
                m.d.comb += gate.eq(running)
        # SIGN is zero from the mux and takes its value from the inversion.
        invert = Mux(op.b == _Source.SIGN, sign, op.invert_b)
        b = Signal(_WORD)
        m.d.comb += b.eq((source & gate.replicate(_WORD)) ^ invert.replicate(_WORD))
        total = Signal(_WORD + 2)
        m.d.comb += total.eq(Cat(carry_in, a) + Cat(carry_in, b))
        result = total[1:_WORD + 1]
        m.d.sync += [
            carry.eq(total[-1]),
            shifted_out.eq(word_a[-1]),
            # The coefficient's sign is its bit 17, beyond word 1.
            sign.eq(Mux(op.b == _Source.COEFFICIENT_1,
                        (coefficient[-1] & gate) ^ op.invert_b, b[-1])),
        ]
        with m.Switch(op.flag):
            with m.Case(_Flag.FIRST):
                m.d.sync += first.eq(result[-1])
            with m.Case(_Flag.SECOND):
                m.d.sync += second.eq(result[-1])
            with m.Case(_Flag.WINDOW_END):
                m.d.sync += window_end.eq(result[-1])

        enabled = Signal()
        with m.Switch(op.condition):
            with m.Case(_Condition.ALWAYS):
                m.d.comb += enabled.eq(1)
            with m.Case(_Condition.FIRST):
                m.d.comb += enabled.eq(first)
            with m.Case(_Condition.SECOND_NOT_FIRST):
                m.d.comb += enabled.eq(second & ~first)
            with m.Case(_Condition.WINDOW_END):
                m.d.comb += enabled.eq(window_end)
        m.d.comb += [write.addr.eq(op.write), write.data.eq(result), write.en.eq(enabled)]

        m.d.sync += [self.window_done.eq(0), self.quantum.eq(0)]
        with m.If(enabled):
            with m.Switch(op.destination):
                with m.Case(_Destination.QUEUE):
                    m.d.sync += queue.eq(Cat(queue[_WORD:], result))
                with m.Case(_Destination.FRACTION):
                    m.d.sync += [
                        self.energy_fraction.eq(Cat(queue[_WORD:], result)),
                        self.import_quanta.eq(self.import_quanta + first),
                        self.export_quanta.eq(self.export_quanta + (second & ~first)),
                        self.quantum.eq(first | second),
                    ]
                with m.Case(_Destination.WINDOW):
                    m.d.sync += window.eq(Cat(window[_WORD:], result))
                with m.Case(_Destination.WINDOW_DONE):
                    m.d.sync += self.window_done.eq(1)
                with m.Case(_Destination.RUNNING):
                    m.d.sync += running.eq(first | second)
                with m.Case(_Destination.MULTIPLIER_BIT):
                    m.d.sync += multiplier_bit.eq(word_a[8])
        with m.If((op.control == _Control.WAIT) & self.sample.valid):
            voltage, current = self.sample.payload.voltage, self.sample.payload.current
            m.d.sync += queue.eq(Cat(voltage[:_WORD], _sign_extend(voltage[_WORD:]),
                                     current[:_WORD], _sign_extend(current[_WORD:])))

        span = _LONG * _WORD
        m.d.comb += [
            self.window.active.eq(window[:spec.SUM_WIDTH]),
            self.window.voltage_squared.eq(window[span:span + spec.SUM_WIDTH]),
            self.window.current_squared.eq(window[2 * span:2 * span + spec.SUM_WIDTH]),
        ]
        return m
