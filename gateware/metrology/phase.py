"""One phase of metrology: DC removal, phase compensation, power and RMS sums,
active energy quanta, and fundamental reactive energy per quadrant, as
:mod:`.spec` defines them.

The arithmetic runs word-serially on 16 bits: the phase's state lives in a scratchpad
RAM of 128 words read on two ports, one 16-bit adder with a carry flag walks each
multi-word value a word per cycle, and a microprogram in a ROM sequences it. Products
use the same adder, one shift-and-add pass per multiplier bit, so the phase has no
multiplier and no wide adder or comparator: it takes :func:`cycles_per_sample_set`
(1,368 with the meter's 8192-sample fundamental window) cycles of the 1,500 there
are between sample sets at 8 kSPS and 12 MHz. The reference for Q1 is a quarter
wave of 256 words in a ROM per output (cos and sin), mirrored into four quadrants.

What the phase publishes (window sums, energy and reactive fractions, quanta and
window counts) is not kept in flip-flops: the microprogram keeps it in scratchpad
words like the rest of its state and *publishes* a value by writing all its words,
lowest first in consecutive cycles, to a third copy of the scratchpad that takes
only such writes. That copy is the ``results`` read port, which the register bank
reads a word a cycle in the same order (see
:class:`~refmeter.gateware.registers.RegisterStore` for why that never tears a value).

The datapath, its microinstruction, a small assembler and the microprogram are all
in this file; :func:`listing` prints the assembled microcode.
"""

import functools
from dataclasses import dataclass, field, replace

from amaranth.hdl import Cat, Module, Mux, ResetSignal, Signal, signed
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory, ReadPort
from amaranth.lib.wiring import In, Out

from . import spec

__all__ = ["PhaseSample", "PhaseMetrology", "PUBLISHED", "RESULTS_ADDRESS_WIDTH",
           "cycles_per_sample_set", "published_words", "listing"]

#: One simultaneous voltage and current sample, ADC codes.
PhaseSample = data.StructLayout({
    "voltage": signed(spec.SAMPLE_WIDTH),
    "current": signed(spec.SAMPLE_WIDTH),
})

#: What a phase publishes on its ``results`` port, by the stem of its register's
#: name (``window_active`` is ``window_active_l1`` for phase l1), with the value's
#: width in bits; :attr:`PhaseMetrology.published` gives their word addresses.
PUBLISHED = {
    "windows_completed": spec.COUNTER_WIDTH,
    "fundamental_windows_completed": spec.COUNTER_WIDTH,
    "window_active": spec.SUM_WIDTH,
    "window_voltage_squared": spec.SUM_WIDTH,
    "window_current_squared": spec.SUM_WIDTH,
    "active_import_wh": spec.COUNTER_WIDTH,
    "active_export_wh": spec.COUNTER_WIDTH,
    "energy_fraction": spec.FRACTION_WIDTH,
    "window_reactive": spec.REACTIVE_WIDTH,
    **{f"reactive_quadrant{number}_varh": spec.COUNTER_WIDTH for number in range(1, 5)},
    "reactive_fraction": spec.REACTIVE_WIDTH,
}

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
# that want only a flag or a destination), and to the same word of the results copy
# if the instruction publishes, and may update a destination register.
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


class _Source(enum.Enum, shape=5):
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
    NCO_STEP_0 = 16      # nco_step, word 0 ...
    NCO_STEP_1 = 17
    COS_LOW = 18         # the reference's cosine << 8, word 0 (a multiplier from bit 24 down)
    COS_HIGH = 19
    SIN_LOW = 20         # ... and its sine
    SIN_HIGH = 21
    FUNDAMENTAL_STEP = 22  # 2**(15 - log2): the fundamental window count's increment


class _Gate(enum.Enum, shape=2):
    """The bit B is ANDed with."""
    NONE = 0
    MULTIPLIER = 1       # the multiplier bit of this multiplication step
    RUNNING = 2          # the energy gate (open unless the last window had no load)
    REACTIVE = 3         # open at a fundamental window's end with |q| >= noload_threshold


class _Carry(enum.Enum, shape=2):
    """Carry into the adder; ``CHAIN`` also shifts the last A word's top bit into A."""
    ZERO = 0
    ONE = 1
    CHAIN = 2


class _Flag(enum.Enum, shape=3):
    """The flag that takes the result's sign bit."""
    NONE = 0
    FIRST = 1
    SECOND = 2
    WINDOW_END = 3
    FUNDAMENTAL_END = 4


class _Condition(enum.Enum, shape=4):
    """When the scratchpad write and the destination take effect."""
    ALWAYS = 0
    FIRST = 1
    SECOND_NOT_FIRST = 2
    WINDOW_END = 3
    FUNDAMENTAL_END = 4
    # A reactive quantum counted (FIRST: +R, SECOND_NOT_FIRST: -R) in each quadrant.
    QUADRANT_1 = 5       # +R importing
    QUADRANT_2 = 6       # +R exporting
    QUADRANT_3 = 7       # -R exporting
    QUADRANT_4 = 8       # -R importing


class _Destination(enum.Enum, shape=3):
    """The register an instruction updates besides the scratchpad."""
    NONE = 0
    QUEUE = 1            # the queue shifts down a word; the result enters at the top
    QUANTA = 2           # pulse `imported` if FIRST, `exported` if SECOND but not FIRST
    RUNNING = 3          # the energy gate becomes FIRST | SECOND
    MULTIPLIER_BIT = 4   # bit 8 of the A word (bit 24 of a two-word multiplier)
    TABLE_INDEX = 5      # the reference's table index: the top 10 bits of the result
    REACTIVE_GATE = 6    # the reactive gate becomes (FIRST | SECOND) at a fundamental window's end
    DIRECTION = 7        # importing becomes: the result is not negative


class _Control(enum.Enum, shape=3):
    NEXT = 0
    WAIT = 1             # ready: wait for a sample set and load it into the queue
    LOOP = 2             # if the loop counter is not zero, decrement it and go to target
    SET_LOOP = 3         # loop counter = target
    JUMP = 4
    LOOP_INDEXED = 5     # LOOP, writing to word `write` + the loop counter (a loop of one
                         # instruction clears loop counter + 1 words)


_ADDRESS = 7             # scratchpad address, bits
#: Address width of :class:`PhaseMetrology`'s ``results`` port: a copy of the scratchpad.
RESULTS_ADDRESS_WIDTH = _ADDRESS
_MAX_LOOPS = 64          # iterations of one loop: the loop counter has 6 bits
_PROGRAM_DEPTH = 512
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
    "publish": 1,        # the result also goes to the results copy (if the write is enabled)
    "control": _Control,
    "target": 9,
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
    publish: bool = False
    control: _Control = _Control.NEXT
    target: int | str = 0        # a number, or a label for LOOP(_INDEXED) and JUMP

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
                  "published" * self.publish,
                  f"{self.control.name} {self.target}" * (self.control is not _Control.NEXT)]
        return "  ".join([text] + [extra for extra in extras if extra])


@dataclass
class _Program:
    """A microprogram under construction; :meth:`assemble` makes it ROM words."""

    instructions: list = field(default_factory=list)
    labels: dict = field(default_factory=dict)
    published: dict = field(default_factory=dict)  # name: the word address of a published value

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
            if code[index].control in _LOOPS and index + 1 < len(code):
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
                "destination": instruction.destination, "publish": int(instruction.publish),
                "control": instruction.control,
                "target": instruction.target,
            })
        self.code = code
        return words, _cycles_per_sample_set(code)

    def listing(self) -> str:
        """The assembled microcode, one instruction a line."""
        return "\n".join(f"{index:3}  {instruction}" for index, instruction in enumerate(self.code))


_LOOPS = (_Control.LOOP, _Control.LOOP_INDEXED)


def _compatible(a, b) -> bool:
    return a is None or b is None or a == b


def _successors(code, index) -> list[int]:
    instruction = code[index]
    successors = []
    if instruction.control is not _Control.JUMP:
        successors.append(index + 1)
    if instruction.control in (*_LOOPS, _Control.JUMP):
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
        if instruction.control in _LOOPS and loops:
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
        self.allocated = 1

    def words(self, count: int) -> list[int]:
        words = list(range(self.allocated, self.allocated + count))
        self.allocated += count
        if self.allocated > 1 << _ADDRESS:
            raise ValueError("The scratchpad is full")
        return words


def _chain(k: int, first: _Carry = _Carry.ZERO) -> _Carry:
    """Carry for word ``k`` of a multi-word operation."""
    return first if k == 0 else _Carry.CHAIN


def _build_program(fundamental_window_log2: int) -> _Program:
    ram = _Scratchpad()
    # The phase's state.
    dc_voltage = ram.words(3)          # dc << 2: dc >> 14 is words 1..2
    dc_current = ram.words(3)
    voltage_delayed = ram.words(2)     # v_d
    current_previous = ram.words(2)    # i_ac of the last sample set
    current_compensated = ram.words(2)  # i_c
    sum_active = ram.words(_LONG)
    sum_voltage = ram.words(_LONG)
    sum_current = ram.words(_LONG)
    (count,) = ram.words(1)
    energy = ram.words(_LONG)          # E, the energy fraction
    theta = ram.words(2)               # the reference's phase
    demodulated = {name: ram.words(_LONG) for name in ("Vc", "Vs", "Ic", "Is")}
    sum_fundamental_active = ram.words(_LONG)  # Pf
    (fundamental_count,) = ram.words(1)  # FUNDAMENTAL_STEP per set; bit 15 ends a window
    reactive = ram.words(_LONG)        # R, the reactive energy fraction
    # Counters, published (they wrap).
    windows = ram.words(2)
    fundamental_windows = ram.words(2)
    imported = ram.words(2)
    exported = ram.words(2)
    quadrants = [ram.words(2) for _ in range(4)]
    # Scratch, valid within a sample set.
    voltage = ram.words(2)            # v_ac (ac before saturation)
    current = ram.words(2)            # i_ac
    voltage_step = ram.words(2)       # 4 * ac, to add to dc << 2
    current_step = ram.words(2)
    multiplier = ram.words(2)         # shifted left a bit per multiplication step
    product = ram.words(4)
    product_current = ram.words(3)
    cross = ram.words(5)              # (Vc >> 32) * Is, then the cross product
    cross_other = ram.words(5)        # (Vs >> 32) * Ic
    below = ram.words(_LONG)          # ~value + bound = bound - value - 1
    above = ram.words(_LONG)          # value + bound

    program = _Program()
    op = program.op

    def clear(words, **fields):
        """Zero ``words`` (consecutive) in a loop; the instruction before sets it up."""
        assert words == list(range(words[0], words[0] + len(words)))
        assert program.instructions[-1].control is _Control.NEXT
        program.instructions[-1] = replace(program.instructions[-1], control=_Control.SET_LOOP,
                                           target=len(words) - 1)
        label = f"clear {words[0]}"
        program.label(label)
        op(write=words[0], control=_Control.LOOP_INDEXED, target=label, **fields)

    # Word 0 is all zeros: what the ROM's output register holds at power-up and while
    # in reset, so it is the first instruction executed either way. Then every word is
    # cleared and published, so that state and results start at 0 after any reset, as
    # the registers they replace did (the RAMs themselves are not reset).
    op()
    every_word = list(range(1, ram.allocated))
    for start in range(0, len(every_word), _MAX_LOOPS):
        op()
        clear(every_word[start:start + _MAX_LOOPS], publish=True)
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

    def publish(words, **fields):
        """Publish ``words``: each is written back to itself and to the results copy."""
        for word in words:
            op(word, write=word, publish=True, **fields)

    def increment(counter, condition):
        """counter += 1 if ``condition``, published."""
        for k, word in enumerate(counter):
            op(word, carry=_chain(k, _Carry.ONE), write=word, publish=True, condition=condition)

    def multiply(name, terms, steps):
        """For each (multiplicand, product words) of ``terms``: product = multiplicand *
        multiplier, taking ``steps`` bits of the multiplier from its bit 24 down, MSB
        first: product = 2 * product + bit * multiplicand, the first (sign) bit
        subtracting. ``multiplicand(k)`` gives the B operand of product word ``k``.
        The terms share the multiplier's shifting."""
        def next_multiplier_bit():
            op(multiplier[0], operand=_Operand.SHIFT, write=multiplier[0])
            op(multiplier[1], operand=_Operand.SHIFT, carry=_Carry.CHAIN, write=multiplier[1],
               destination=_Destination.MULTIPLIER_BIT)

        def step(first):
            next_multiplier_bit()
            words = [(multiplicand, k, word) for multiplicand, product_words in terms
                     for k, word in enumerate(product_words)]
            for index, (multiplicand, k, word) in enumerate(words):
                last = index == len(words) - 1
                control, target = ((_Control.SET_LOOP, steps - 2) if first else (_Control.LOOP, name)
                                   ) if last else (_Control.NEXT, 0)
                if first:
                    op(**multiplicand(k), gate=_Gate.MULTIPLIER, invert_b=True,
                       carry=_chain(k, _Carry.ONE), write=word, control=control, target=target)
                else:
                    op(word, operand=_Operand.SHIFT, **multiplicand(k), gate=_Gate.MULTIPLIER,
                       carry=_chain(k), write=word, control=control, target=target)

        step(first=True)
        program.label(name)
        step(first=False)

    def words_of(value):
        """A multiplicand: the words of ``value``, then its sign."""
        return lambda k: {"b_word": value[k]} if k < len(value) else {"b": _Source.SIGN}

    def add(total, value, **fields):
        """total += value, ``value`` sign-extended to the length of ``total``."""
        for k in range(len(total)):
            op(total[k], b_word=value[k] if k < len(value) else None, b=_Source.SIGN,
               carry=_chain(k), write=total[k], **fields)

    # Phase compensation: i_c = sat(i_prev + (a * (i_ac - i_c)) >> 17). With the
    # multiplicand a << 15, the shift by 17 is taking the product's words 2 and 3.
    op(current[0], b_word=current_compensated[0], invert_b=True, carry=_Carry.ONE,
       write=multiplier[0])
    op(current[1], b_word=current_compensated[1], invert_b=True, carry=_Carry.CHAIN,
       write=multiplier[1])
    coefficient = (_Source.COEFFICIENT_0, _Source.COEFFICIENT_1, _Source.SIGN, _Source.SIGN)
    multiply("phase", [(lambda k: {"b": coefficient[k]}, product)], steps=25)
    op(current_previous[0], b_word=product[2], write=current_compensated[0])
    op(current_previous[1], b_word=product[3], carry=_Carry.CHAIN, write=current_compensated[1])
    saturate(current_compensated)

    def multiply_samples(name, y, terms):
        """For each (x, product words) of ``terms``: product = x * y, for saturated
        24-bit x and y."""
        # The multiplier is 2 * y, so that its 24 bits are taken from bit 24 down.
        op(y[0], operand=_Operand.SHIFT, write=multiplier[0])
        op(y[1], operand=_Operand.SHIFT, carry=_Carry.CHAIN, write=multiplier[1])
        multiply(name, [(words_of(x), words) for x, words in terms], steps=24)

    def count_quanta(fraction):
        """F >= Q counts a quantum of one sign and leaves F - Q, else F <= -Q counts one
        of the other and leaves F + Q (FIRST and SECOND say which); F is published."""
        quantum = [_Source(_Source.QUANTUM_0.value + k) for k in range(_LONG)]
        for k in range(_LONG):                # FIRST: F >= Q, and ~below = F - Q
            op(fraction[k], operand=_Operand.INVERT, b=quantum[k], carry=_chain(k),
               write=below[k], flag=_Flag.FIRST if k == _LONG - 1 else _Flag.NONE)
        for k in range(_LONG):
            op(fraction[k], b=quantum[k], carry=_chain(k), write=above[k])
        for k in range(_LONG):                # SECOND: F + Q - 1 < 0, that is F <= -Q
            op(above[k], invert_b=True, carry=_chain(k),
               flag=_Flag.SECOND if k == _LONG - 1 else _Flag.NONE)
        for k in range(_LONG):
            op(below[k], operand=_Operand.INVERT, write=fraction[k], condition=_Condition.FIRST)
        for k in range(_LONG):
            op(above[k], write=fraction[k], condition=_Condition.SECOND_NOT_FIRST)
        publish(fraction)

    def compare_with_threshold(value):
        """FIRST: value >= noload_threshold; SECOND: value <= -noload_threshold."""
        threshold = [_Source(_Source.THRESHOLD_0.value + k) for k in range(_LONG)]
        for k in range(_LONG):
            op(value[k], operand=_Operand.INVERT, b=threshold[k], carry=_chain(k),
               flag=_Flag.FIRST if k == _LONG - 1 else _Flag.NONE)
        for k in range(_LONG):
            op(value[k], b=threshold[k], carry=_chain(k), write=above[k])
        for k in range(_LONG):
            op(above[k], invert_b=True, carry=_chain(k),
               flag=_Flag.SECOND if k == _LONG - 1 else _Flag.NONE)

    # v_d * i_c and i_c * i_c, sharing the multiplier i_c; then v_d * v_d.
    multiply_samples("active", current_compensated,
                     [(voltage_delayed, product[:3]), (current_compensated, product_current)])
    add(sum_active, product[:3])
    add(sum_fundamental_active, product[:3])
    # Energy: E + p while the gate is open, then its quanta.
    add(energy, product[:3], gate=_Gate.RUNNING)
    count_quanta(energy)
    op(destination=_Destination.QUANTA)
    increment(imported, _Condition.FIRST)
    increment(exported, _Condition.SECOND_NOT_FIRST)

    add(sum_current, product_current)
    multiply_samples("voltage", voltage_delayed, [(voltage_delayed, product[:3])])
    add(sum_voltage, product[:3])

    # Window: count + 1 >= window_samples ends it; its sums are published and cleared,
    # and |sum of v*i| >= noload_threshold decides the gate for the next.
    op(count, carry=_Carry.ONE, write=count)
    compare_with_threshold(sum_active)
    op(count, operand=_Operand.INVERT, b=_Source.WINDOW, flag=_Flag.WINDOW_END)
    op(destination=_Destination.RUNNING, condition=_Condition.WINDOW_END)
    op(write=count, condition=_Condition.WINDOW_END)
    publish(sum_active + sum_voltage + sum_current, condition=_Condition.WINDOW_END)
    increment(windows, _Condition.WINDOW_END)
    clear(sum_active + sum_voltage + sum_current, condition=_Condition.WINDOW_END)

    # Fundamental reactive energy. The reference: the table index is latched two cycles before the first use of
    # COS_* and SIN_* (the table's read is registered).
    op(theta[1], destination=_Destination.TABLE_INDEX)
    op(theta[0], b=_Source.NCO_STEP_0, write=theta[0])
    op(theta[1], b=_Source.NCO_STEP_1, carry=_Carry.CHAIN, write=theta[1])
    op(fundamental_count, b=_Source.FUNDAMENTAL_STEP, write=fundamental_count,
       flag=_Flag.FUNDAMENTAL_END)
    for part, (low, high) in (("cos", (_Source.COS_LOW, _Source.COS_HIGH)),
                              ("sin", (_Source.SIN_LOW, _Source.SIN_HIGH))):
        op(b=low, write=multiplier[0])
        op(b=high, write=multiplier[1])
        multiply(part, [(words_of(voltage_delayed), product[:3]),
                        (words_of(current_compensated), product_current)],
                 steps=spec.REFERENCE_WIDTH)
        add(demodulated["V" + part[0]], product[:3])
        add(demodulated["I" + part[0]], product_current)
    # The cross product (Vc >> 32) * Is - (Vs >> 32) * Ic, every set (so every set
    # takes as long), used at a window's end. Its shift right by log2 - 1 is a shift
    # left by 17 - log2 and dropping word 0.
    for name, voltage_sum, current_sum, result in (("cross", "Vc", "Is", cross),
                                                   ("cross_other", "Vs", "Ic", cross_other)):
        op(demodulated[voltage_sum][2], write=multiplier[0])
        op(demodulated[voltage_sum][3], write=multiplier[1])
        multiply(name, [(words_of(demodulated[current_sum]), result)], steps=25)
    for k in range(len(cross)):
        last = k == len(cross) - 1
        op(cross[k], b_word=cross_other[k], invert_b=True, carry=_chain(k, _Carry.ONE),
           write=cross[k], control=_Control.SET_LOOP if last else _Control.NEXT,
           target=16 - fundamental_window_log2 if last else 0)
    program.label("align")
    for k in range(len(cross)):
        last = k == len(cross) - 1
        op(cross[k], operand=_Operand.SHIFT, carry=_chain(k), write=cross[k],
           control=_Control.LOOP if last else _Control.NEXT, target="align" if last else 0)
    q = cross[1:]
    compare_with_threshold(q)
    op(destination=_Destination.REACTIVE_GATE)
    add(reactive, q, gate=_Gate.REACTIVE)
    publish(q, condition=_Condition.FUNDAMENTAL_END)
    increment(fundamental_windows, _Condition.FUNDAMENTAL_END)
    op(sum_fundamental_active[-1], destination=_Destination.DIRECTION,
       condition=_Condition.FUNDAMENTAL_END)
    clear([word for total in (*demodulated.values(), sum_fundamental_active)
           for word in total] + [fundamental_count], condition=_Condition.FUNDAMENTAL_END)
    count_quanta(reactive)
    for number, quadrant in enumerate(quadrants, start=1):
        increment(quadrant, _Condition[f"QUADRANT_{number}"])

    # This sample set's v_ac and i_ac are the next one's v_d and i_prev.
    op(voltage[0], write=voltage_delayed[0])
    op(voltage[1], write=voltage_delayed[1])
    op(current[0], write=current_previous[0])
    op(current[1], write=current_previous[1], control=_Control.JUMP, target="wait")

    program.published = {
        "windows_completed": windows[0],
        "fundamental_windows_completed": fundamental_windows[0],
        "window_active": sum_active[0],
        "window_voltage_squared": sum_voltage[0],
        "window_current_squared": sum_current[0],
        "active_import_wh": imported[0],
        "active_export_wh": exported[0],
        "energy_fraction": energy[0],
        "window_reactive": q[0],
        **{f"reactive_quadrant{number}_varh": words[0]
           for number, words in enumerate(quadrants, start=1)},
        "reactive_fraction": reactive[0],
    }
    assert program.published.keys() == PUBLISHED.keys()
    return program


@functools.cache
def _microcode(fundamental_window_log2: int) -> tuple[_Program, list[dict], int]:
    program = _build_program(fundamental_window_log2)
    words, cycles = program.assemble()
    return program, words, cycles


def cycles_per_sample_set(fundamental_window_log2: int = spec.FUNDAMENTAL_WINDOW_LOG2) -> int:
    """Clock cycles :class:`PhaseMetrology` takes per sample set, whatever the data."""
    return _microcode(fundamental_window_log2)[2]


def published_words(fundamental_window_log2: int = spec.FUNDAMENTAL_WINDOW_LOG2) -> dict[str, int]:
    """Word address on :class:`PhaseMetrology`'s ``results`` of each value of :data:`PUBLISHED`."""
    return dict(_microcode(fundamental_window_log2)[0].published)


def listing(fundamental_window_log2: int = spec.FUNDAMENTAL_WINDOW_LOG2) -> str:
    """The assembled microcode, one instruction a line."""
    return _microcode(fundamental_window_log2)[0].listing()


def _sign_extend(value):
    return Cat(value, value[-1].replicate(_WORD - len(value)))


class PhaseMetrology(wiring.Component):
    """The metrology of one phase.

    Takes :func:`cycles_per_sample_set` cycles per sample set (1,368 with the
    meter's fundamental window), whatever the data, so phases started together stay
    in step; ``sample.ready`` is low meanwhile. That is within the 1,500 cycles
    between sets at 8 kSPS and 12 MHz. After reset it clears its state and results
    and is first ready about 130 cycles later.

    Parameters
    ----------
    fundamental_window_log2 : int
        Fundamental windows are 2**this sample sets (1 to 14).

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
    nco_step : Signal(32), in
        The line frequency, cycles per sample set * 2**32 (see :func:`spec.nco_step`).
    results : memory read port out, 16-bit words
        What the phase publishes (:data:`PUBLISHED`), each value in consecutive words
        from its address in :attr:`published`, least significant first and
        sign-extended; read a word a cycle lowest first, as
        :class:`~refmeter.gateware.registers.RegisterBank` does, they are one
        publication's. The data follow the address a cycle later. At a window's end
        the window sums are published, then ``windows_completed`` counts it, so an
        unchanged count around reading them says they belong to one window; likewise
        ``window_reactive`` and ``fundamental_windows_completed``. The energy and
        reactive fractions are published every sample set, the quanta counts when
        they count.
    imported, exported : Signal(), out
        Pulse with every active energy quantum counted, import (+A) or export (-A).
    reactive_imported, reactive_exported : Signal(), out
        Pulse with every reactive energy quantum counted, +R (quadrants I and II) or
        -R (III and IV).
    """

    sample: In(stream.Signature(PhaseSample))
    phase_coefficient: In(signed(spec.PHASE_COEFFICIENT_WIDTH))
    energy_quantum: In(spec.QUANTUM_WIDTH)
    noload_threshold: In(spec.QUANTUM_WIDTH)
    window_samples: In(spec.WINDOW_WIDTH)
    nco_step: In(spec.NCO_WIDTH)
    results: Out(ReadPort.Signature(addr_width=RESULTS_ADDRESS_WIDTH, shape=_WORD))
    imported: Out(1)
    exported: Out(1)
    reactive_imported: Out(1)
    reactive_exported: Out(1)

    def __init__(self, *, fundamental_window_log2: int = spec.FUNDAMENTAL_WINDOW_LOG2):
        if not 1 <= fundamental_window_log2 <= spec.MAX_FUNDAMENTAL_WINDOW_LOG2:
            raise ValueError(f"fundamental_window_log2 must be 1 to "
                             f"{spec.MAX_FUNDAMENTAL_WINDOW_LOG2}, not {fundamental_window_log2}")
        self._fundamental_window_log2 = fundamental_window_log2
        super().__init__()

    @property
    def fundamental_window_log2(self) -> int:
        return self._fundamental_window_log2

    @property
    def cycles_per_sample_set(self) -> int:
        return cycles_per_sample_set(self._fundamental_window_log2)

    @property
    def published(self) -> dict[str, int]:
        """Word address on ``results`` of each value of :data:`PUBLISHED`."""
        return published_words(self._fundamental_window_log2)

    def elaborate(self, platform):
        m = Module()
        _, words, _ = _microcode(self._fundamental_window_log2)

        # Sequencer. The ROM is read at the next pc, so its output `op` is the
        # instruction at `pc`. In reset it is read at 0, so the first instruction after
        # reset is the one at pc 0 however long the reset was.
        m.submodules.microcode = microcode = Memory(
            shape=_Microword, depth=_PROGRAM_DEPTH, init=words)
        fetch = microcode.read_port()
        op = fetch.data
        pc = Signal(range(_PROGRAM_DEPTH))
        loops = Signal(range(_MAX_LOOPS))
        next_pc = Signal(range(_PROGRAM_DEPTH))
        m.d.comb += next_pc.eq(pc + 1)
        with m.Switch(op.control):
            with m.Case(_Control.WAIT):
                m.d.comb += self.sample.ready.eq(1)
                with m.If(~self.sample.valid):
                    m.d.comb += next_pc.eq(pc)
            with m.Case(_Control.LOOP, _Control.LOOP_INDEXED):
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
        # The results copy: only publishing writes reach it. Its reads are transparent
        # (a word read as it is written reads the new value), so that a read a word a
        # cycle in step with a publication sees all of it or none of it.
        m.submodules.results = results = Memory(shape=_WORD, depth=1 << _ADDRESS, init=[])
        publication = results.write_port()
        results_read = results.read_port(transparent_for=(publication,))
        m.d.comb += [
            results_read.addr.eq(self.results.addr),
            results_read.en.eq(self.results.en),
            self.results.data.eq(results_read.data),
        ]

        carry = Signal()             # out of the last word
        shifted_out = Signal()       # the last A word's top bit
        sign = Signal()              # the last B word's top bit
        multiplier_bit = Signal()
        first = Signal()
        second = Signal()
        window_end = Signal()
        fundamental_end = Signal()
        running = Signal(init=1)     # the energy gate
        reactive_gate = Signal()
        importing = Signal(init=1)   # the direction of the last fundamental window's energy
        # The queue: a sample set enters in one cycle, as four sign-extended words, and
        # leaves a word per use.
        queue = Signal(4 * _WORD)

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

        # The reference: cos and sin from one quarter-wave table each (see spec.reference).
        table_index = Signal(spec.REFERENCE_INDEX_WIDTH)
        quadrant, offset = table_index[8:], table_index[:8]
        reference = {}
        for name, mirrored, negated in (("cos", quadrant[0], quadrant[0] ^ quadrant[1]),
                                        ("sin", ~quadrant[0], quadrant[1])):
            m.submodules[f"{name}_table"] = table = Memory(
                shape=16, depth=len(spec.QUARTER_WAVE), init=spec.QUARTER_WAVE)
            read = table.read_port()
            # The read is registered, so the sign follows the index a cycle later too.
            negate = Signal(name=f"{name}_negate")
            m.d.comb += read.addr.eq(Mux(mirrored, ~offset, offset))
            m.d.sync += negate.eq(negated)
            value = Signal(signed(spec.REFERENCE_WIDTH), name=name)
            m.d.comb += value.eq(Mux(negate, -read.data, read.data))
            reference[name] = value

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
            with m.Case(_Source.NCO_STEP_0):
                m.d.comb += source.eq(self.nco_step[:_WORD])
            with m.Case(_Source.NCO_STEP_1):
                m.d.comb += source.eq(self.nco_step[_WORD:])
            # A reference value as a multiplier whose sign is bit 24 of two words.
            for name, low, high in (("cos", _Source.COS_LOW, _Source.COS_HIGH),
                                    ("sin", _Source.SIN_LOW, _Source.SIN_HIGH)):
                with m.Case(low):
                    m.d.comb += source.eq(reference[name] << 8)
                with m.Case(high):
                    m.d.comb += source.eq(reference[name] >> 8)
            with m.Case(_Source.FUNDAMENTAL_STEP):
                m.d.comb += source.eq(1 << (15 - self._fundamental_window_log2))
        gate = Signal()
        with m.Switch(op.gate):
            with m.Case(_Gate.NONE):
                m.d.comb += gate.eq(1)
            with m.Case(_Gate.MULTIPLIER):
                m.d.comb += gate.eq(multiplier_bit)
            with m.Case(_Gate.RUNNING):
                m.d.comb += gate.eq(running)
            with m.Case(_Gate.REACTIVE):
                m.d.comb += gate.eq(reactive_gate)
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
            with m.Case(_Flag.FUNDAMENTAL_END):
                m.d.sync += fundamental_end.eq(result[-1])

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
            with m.Case(_Condition.FUNDAMENTAL_END):
                m.d.comb += enabled.eq(fundamental_end)
            # +R is quadrant I (importing) or II; -R is IV (importing) or III.
            with m.Case(_Condition.QUADRANT_1):
                m.d.comb += enabled.eq(first & importing)
            with m.Case(_Condition.QUADRANT_2):
                m.d.comb += enabled.eq(first & ~importing)
            with m.Case(_Condition.QUADRANT_3):
                m.d.comb += enabled.eq(second & ~first & ~importing)
            with m.Case(_Condition.QUADRANT_4):
                m.d.comb += enabled.eq(second & ~first & importing)
        m.d.comb += [
            write.addr.eq(Mux(op.control == _Control.LOOP_INDEXED, op.write + loops, op.write)),
            write.data.eq(result),
            write.en.eq(enabled),
            publication.addr.eq(write.addr),
            publication.data.eq(result),
            publication.en.eq(enabled & op.publish),
        ]

        m.d.sync += [self.imported.eq(0), self.exported.eq(0)]
        with m.If(enabled):
            with m.Switch(op.destination):
                with m.Case(_Destination.QUEUE):
                    m.d.sync += queue.eq(Cat(queue[_WORD:], result))
                with m.Case(_Destination.QUANTA):
                    m.d.sync += [self.imported.eq(first), self.exported.eq(second & ~first)]
                with m.Case(_Destination.RUNNING):
                    m.d.sync += running.eq(first | second)
                with m.Case(_Destination.MULTIPLIER_BIT):
                    m.d.sync += multiplier_bit.eq(word_a[8])
                with m.Case(_Destination.TABLE_INDEX):
                    m.d.sync += table_index.eq(result[-spec.REFERENCE_INDEX_WIDTH:])
                with m.Case(_Destination.REACTIVE_GATE):
                    m.d.sync += reactive_gate.eq((first | second) & fundamental_end)
                with m.Case(_Destination.DIRECTION):
                    m.d.sync += importing.eq(~result[-1])
        # A reactive quantum is counted by the first word of a quadrant's increment.
        counts_quantum = enabled & (op.carry == _Carry.ONE)
        m.d.sync += [
            self.reactive_imported.eq(counts_quantum & ((op.condition == _Condition.QUADRANT_1) |
                                                        (op.condition == _Condition.QUADRANT_2))),
            self.reactive_exported.eq(counts_quantum & ((op.condition == _Condition.QUADRANT_3) |
                                                        (op.condition == _Condition.QUADRANT_4))),
        ]
        with m.If((op.control == _Control.WAIT) & self.sample.valid):
            voltage, current = self.sample.payload.voltage, self.sample.payload.current
            m.d.sync += queue.eq(Cat(voltage[:_WORD], _sign_extend(voltage[_WORD:]),
                                     current[:_WORD], _sign_extend(current[_WORD:])))
        return m
