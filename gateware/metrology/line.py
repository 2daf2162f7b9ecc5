"""Line frequency and voltage events of one phase, stated once and built.

The arithmetic, per voltage sample ``v`` (signed 24-bit, 8 kSPS; DC-removed in the
meter: a DC offset would add its square to the RMS, and shift every rising crossing
alike, leaving the period as it is)::

    x = v >> 8                         # 16 bits: plenty for crossings and RMS
    m = 2 * (((x ^ (x >> 15)) >> 4) & 0x7FF) + 1
                                       # |v| in units of 2**11 codes, the middle of
                                       # its bin (so no bias): odd, 1..4095

    # Zero crossings: a Schmitt trigger at 0 with HYSTERESIS (128, i.e. 2**15
    # codes) either side, so noise near zero cannot cross twice; and nothing is
    # looked for in the first BLANKING (32) samples of a half-cycle, so harmonics
    # that make the waveform itself cross zero several times give one crossing.
    blanking = n_cur < BLANKING
    rising   = armed_rise and x_prev < 0 <= x and not blanking
    falling  = armed_fall and x < 0 <= x_prev and not blanking
    # armed_rise: x < -HYSTERESIS (not blanking) since the last rising crossing;
    # armed_fall: x >= HYSTERESIS (not blanking) since the last falling crossing.

    # Half-cycles end at every crossing, or after HALF_CYCLE_MAX (120) samples
    # without one (15 ms: no voltage). The sample that ends one begins the next.
    timeout  = n_cur == HALF_CYCLE_MAX and not (rising or falling)
    if rising or falling or timeout:
        evaluate(sum_prev + sum_cur)   # the sum over the last cycle (two half-cycles)
        sum_prev, sum_cur, n_cur = sum_cur, 0, 0
    sum_cur += m * m;  n_cur += 1

    # Urms(1/2) (IEC 61000-4-30: one cycle, refreshed every half-cycle). The
    # window's N samples hold one cycle's energy, but N is a whole number and the
    # cycle is not: dividing by N would err by up to 1/N (0.6 %). So the sum is
    # divided by the cycle's length in samples, the last period measured (the
    # nominal one until the first measurement):
    evaluate(S):
        ms   = min((S << 24) // period, 2**32 - 1)   # mean square, 2**14 codes²
        half_cycle_ms = ms >> 16       # 2**30 codes²: what registers and events show
        # Events, from the third half-cycle end after reset on (the first window of
        # a whole cycle), if `declared` (Udin², 2**30 codes²) is not 0:
        if declared and half_cycles_ended >= 2:
            r = ms // declared         # (Urms(1/2) / Udin)², Q16
            sag:          starts when r < SAG_START,  ends when r >= SAG_END
            swell:        starts when r > SWELL_START, ends when r <= SWELL_END
            interruption: starts when r < INTERRUPTION_START, ends when r >= ...END
            # Each edge carries the extreme half_cycle_ms of its event so far, this
            # half-cycle included: the lowest since the sag began for a sag or an
            # interruption (which always lies within a sag), the highest since the
            # swell began for a swell. A start's extreme is its own half-cycle's.

    # Frequency, at each rising crossing (x_prev < 0 <= x), n the sample's index:
    g = (x << 10) // (x - x_prev)      # 0..1023: the crossing is g/1024 samples
    t = n * 1024 - g                   # before sample n (linear interpolation)
    # A measurement runs from one rising crossing to the 64th after it, which
    # starts the next: period = t_64 - t_0 (UQ8.16 samples per cycle, exact) is
    # published with nco_step = 2**48 // period and `valid` set; a half-cycle
    # timeout abandons it and clears `valid`.

The event levels are ratios of the declared voltage (:class:`EventLevels`), so one
register, the declared voltage, sets them all.
"""

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from ..registers import Access, Field, Guard, Register, register_ports
from . import spec

__all__ = ["LineMonitor", "VoltageEventEdge", "EventLevels", "EventKind", "DEFAULT_LEVELS",
           "line_registers", "HYSTERESIS", "BLANKING", "HALF_CYCLE_MAX", "MEASUREMENT_CYCLES_LOG2",
           "INTERPOLATION_BITS", "PERIOD_WIDTH", "PERIOD_FRACTION", "HALF_CYCLE_MS_WIDTH",
           "RATIO_FRACTION", "MAX_CYCLES_PER_SAMPLE", "DECLARED_VOLTAGE_V",
           "nominal_period", "declared_voltage_squared"]

#: Bits dropped from a sample for everything here: 16 bits are left.
SAMPLE_SHIFT = 8
#: Schmitt-trigger hysteresis around zero, in units of 2**SAMPLE_SHIFT codes: 2**15
#: codes (1.56 V on the nominal front end) is 600 times the 101 dB ADC's noise, and
#: 0.5 % of Un's peak, so crossings are found down to that.
HYSTERESIS = 128
#: Samples after a half-cycle's end in which no crossing is looked for, nor armed: 2 ms,
#: so that harmonics that make the waveform itself cross zero several times near one of
#: its zeros give one crossing, the first. Any spectrum whose amplitudes add up to at
#: most 28 % of the fundamental keeps its crossings within 16 samples at 45 Hz (for
#: 10 % THD, nine harmonics of 3.3 % each); half-cycles must be longer (up to 250 Hz).
BLANKING = 16
#: Magnitude bits squared for the RMS: 12 (0.02 % of Urms(1/2)² at 10 % Un, worst case).
MAGNITUDE_WIDTH = 12
#: Longest half-cycle, samples: 15 ms, a half-cycle at 33 Hz; without crossings
#: (no voltage) half-cycles are this long, so loss of voltage is still evaluated.
HALF_CYCLE_MAX = 120
#: Cycles per frequency measurement: 2**6 = 64 (0.98 s at 65 Hz to 1.42 s at 45 Hz),
#: so the mean period is a shift, not a division.
MEASUREMENT_CYCLES_LOG2 = 6
#: Fraction bits of a crossing's interpolated time: with 64 cycles the period then
#: has 10 + 6 = 16 fraction bits exactly.
INTERPOLATION_BITS = 10
PERIOD_FRACTION = INTERPOLATION_BITS + MEASUREMENT_CYCLES_LOG2
#: Period, UQ8.16 samples per cycle: a cycle is at most two half-cycles (240 samples).
PERIOD_WIDTH = 8 + PERIOD_FRACTION
#: ``half_cycle_ms``: Urms(1/2)² in units of 2**30 codes² (full-scale sine: 2**15).
HALF_CYCLE_MS_WIDTH = 16
#: Fraction bits of the ratio (Urms(1/2) / Udin)² that the levels are compared with.
RATIO_FRACTION = 16


class EventKind(enum.Enum, shape=2):
    """What a voltage event is (IEC 61000-4-30 §5.4, §5.5)."""

    SAG = 0            #: a dip: Urms(1/2) below the sag level
    SWELL = 1          #: Urms(1/2) above the swell level
    INTERRUPTION = 2   #: Urms(1/2) below the interruption level: loss of voltage


@dataclass(frozen=True)
class EventLevels:
    """Where voltage events start and end, in percent of the declared voltage Udin.

    An event starts when Urms(1/2) crosses its level (below for a sag or an
    interruption, above for a swell) and ends when it comes back past the level
    by ``hysteresis_percent`` (IEC 61000-4-30 typical values by default; 10 % for
    interruptions, as EN 50160 counts "loss of voltage" on a meter).
    """

    sag_percent: float = 90.0
    swell_percent: float = 110.0
    interruption_percent: float = 10.0
    hysteresis_percent: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.interruption_percent < self.sag_percent < 100 < self.swell_percent:
            raise ValueError(f"Event levels must satisfy 0 < interruption < sag < 100 < swell "
                             f"(percent), not {self}")
        if not 0 <= 2 * self.hysteresis_percent < self.swell_percent - self.sag_percent:
            raise ValueError(f"A hysteresis of {self.hysteresis_percent} % would make a sag end "
                             f"above where a swell ends")

    @staticmethod
    def _ratio(percent: float) -> int:
        return round((percent / 100) ** 2 * (1 << RATIO_FRACTION))

    @property
    def thresholds(self) -> dict[str, int]:
        """The six comparisons' constants: (Urms(1/2) / Udin)², Q16."""
        h = self.hysteresis_percent
        return {
            "sag_start": self._ratio(self.sag_percent),
            "sag_end": self._ratio(self.sag_percent + h),
            "swell_start": self._ratio(self.swell_percent),
            "swell_end": self._ratio(self.swell_percent - h),
            "interruption_start": self._ratio(self.interruption_percent),
            "interruption_end": self._ratio(self.interruption_percent + h),
        }


DEFAULT_LEVELS = EventLevels()


def nominal_period(frequency_hz: float) -> int:
    """The period of ``frequency_hz`` as ``LineMonitor`` publishes it (UQ8.16 samples)."""
    return round(spec.SAMPLE_RATE_HZ / frequency_hz * (1 << PERIOD_FRACTION))


#: Declared supply voltage Udin of the default register value, V (230 V networks).
DECLARED_VOLTAGE_V = 230.0
#: The unit of ``half_cycle_ms`` and of the declared voltage squared: 2**30 codes²
#: (m is |v| / 2**11, m² is v² / 2**22, the mean square is kept << 8 and shown >> 16).
MEAN_SQUARE_UNIT_LOG2 = 30


def declared_voltage_squared(voltage_v: float, volts_per_code: float) -> int:
    """The ``declared_voltage_squared`` register for a declared voltage Udin: Udin² in
    2**30 codes², for a front end of ``volts_per_code``."""
    return round((voltage_v / volts_per_code) ** 2 / (1 << MEAN_SQUARE_UNIT_LOG2))


#: One edge of a voltage event, as a monitor streams it to the event log.
VoltageEventEdge = data.StructLayout({
    "kind": EventKind,
    "end": 1,                        # 0: the event started; 1: it ended
    "value": HALF_CYCLE_MS_WIDTH,    # the event's extreme half_cycle_ms so far
})


def line_registers(phase: str) -> tuple[Register, ...]:
    """The registers of phase ``phase``'s :class:`LineMonitor` (``l1`` ...)."""
    return (
        Register(f"line_period_{phase}", Access.RO, (
            Field("period", PERIOD_WIDTH, "mean period over the last 64 cycles, UQ8.16 "
                                          "samples per cycle: frequency = sample rate / period"),
            Field("measurements", 16, "periods measured since reset (wraps)"),
            Field("valid", 1, "1: the voltage has crossed zero since the period was measured; "
                              "0: no voltage, or no measurement yet (period is nominal)"),
        ), f"line frequency of phase {phase}, as a period, with its count and validity "
           f"(one read, one instant)"),
        Register(f"voltage_half_cycle_{phase}", Access.RO, (
            Field("mean_square", HALF_CYCLE_MS_WIDTH,
                  "Urms(1/2) squared, 2**30 codes²: the voltage's mean square over the cycle "
                  "that ended with the last half-cycle"),
            Field("sag", 1, "1: a sag (dip) is in progress"),
            Field("swell", 1, "1: a swell is in progress"),
            Field("interruption", 1, "1: an interruption (loss of voltage) is in progress"),
        ), f"half-cycle RMS voltage of phase {phase} (IEC 61000-4-30 Urms(1/2)) and the "
           f"voltage events in progress"),
        Register.number(f"declared_voltage_squared_{phase}", Access.RW, HALF_CYCLE_MS_WIDTH,
                        f"declared voltage Udin of phase {phase}, squared, 2**30 codes²: "
                        f"sag, swell and interruption levels are fractions of it; 0: no "
                        f"voltage events",
                        init=declared_voltage_squared(
                            DECLARED_VOLTAGE_V, spec.VOLTAGE_FULL_SCALE_V / spec.SAMPLE_MAX),
                        guard=Guard.SEAL),
    )


#: Divider steps of each division: (S << 24) // period, mean square // declared,
#: (x << 10) // d and 2**48 // period.
_MEAN_SHIFT = 24
_MEAN_STEPS, _RATIO_STEPS, _INTERPOLATION_STEPS, _NCO_STEPS = (
    32 + _MEAN_SHIFT, 32, 16 + INTERPOLATION_BITS, 49)
#: Clock cycles from one sample taken to the next, at most, if the event log takes each
#: edge at once: a half-cycle's end with event edges at a rising crossing that ends a
#: measurement, with every magnitude bit set. By state: IDLE, BEGIN, MEAN, RATIO,
#: EVALUATE, EMIT, CROSSING, INTERPOLATE, MEASURE, NCO, ROTATE, LOAD, SQUARE, DONE.
MAX_CYCLES_PER_SAMPLE = (2 + _MEAN_STEPS + _RATIO_STEPS + 1 + 6 + 1 + _INTERPOLATION_STEPS + 1
                         + _NCO_STEPS + 1 + MAGNITUDE_WIDTH + 2 * MAGNITUDE_WIDTH + 1)


class LineMonitor(wiring.Component):
    """Line frequency, Urms(1/2) and voltage events of one phase, as the module
    docstring states them.

    A small state machine steps one restoring divider (a 24-bit subtractor, one
    quotient bit per cycle) and one 32-bit adder: at most
    :data:`MAX_CYCLES_PER_SAMPLE` cycles per sample, a seventh of the time between
    samples at 8 kSPS and 12 MHz. Registers do double duty to save logic cells: the
    older running sum is the quotient register once a half-cycle has ended (it is
    replaced right after), the remainder holds the multiplicand while squaring, and
    dividends enter the remainder a bit at a time instead of being loaded.

    Parameters
    ----------
    phase : str
        The phase's name in its registers' names (``l1``, ``l2``, ``l3``).
    nominal_frequency_hz : float
        Line frequency assumed until the first measurement (``nco_step``, ``period``).
    levels : EventLevels
        Where events start and end, relative to the declared voltage.

    Attributes
    ----------
    samples : stream in, signed(24)
        Voltage codes at the sample rate. ``ready`` is high while the monitor is
        idle; a sample taken keeps it busy (``ready`` low) for up to
        :data:`MAX_CYCLES_PER_SAMPLE` cycles. So it can share a stream with other
        consumers that take a sample when all are ready, as ``Metrology`` does.
    nco_step : Signal(32), out
        The measured line frequency as cycles per sample × 2**32: ``2**48 // period``,
        updated a few cycles after each published period, for
        :class:`~.phase.PhaseMetrology`'s ``nco_step``; before the first,
        :func:`spec.nco_step` of the nominal frequency. It holds when the voltage is lost.
    events : stream out, :data:`VoltageEventEdge`
        Each start and end of a sag, swell or interruption, in the order they happen
        (within one half-cycle: ends before starts, inner events ending first and
        starting last). The monitor holds each edge until ``ready`` and is busy
        meanwhile: :class:`~refmeter.gateware.metrology.events.EventLog` takes an
        edge within a few cycles.

    Besides these it has one port per register of :attr:`registers`
    (:func:`line_registers`; see :func:`~refmeter.gateware.registers.register_ports`).
    """

    def __init__(self, *, phase: str, nominal_frequency_hz: float = 50.0,
                 levels: EventLevels = DEFAULT_LEVELS):
        if not 40 <= nominal_frequency_hz <= 70:
            raise ValueError(f"Nominal frequency {nominal_frequency_hz} Hz is outside 40..70 Hz")
        self._phase = phase
        self._nominal_period = nominal_period(nominal_frequency_hz)
        self._levels = levels
        self.registers = line_registers(phase)
        super().__init__({
            "samples": In(stream.Signature(signed(spec.SAMPLE_WIDTH))),
            "nco_step": Out(spec.NCO_WIDTH, init=spec.nco_step(nominal_frequency_hz)),
            "events": Out(stream.Signature(VoltageEventEdge)),
            **register_ports(self.registers),
        })

    @property
    def levels(self) -> EventLevels:
        return self._levels

    def _register(self, name: str):
        return getattr(self, f"{name}_{self._phase}")

    def elaborate(self, platform):
        m = Module()
        thresholds = self._levels.thresholds

        # The sample, taken when idle; it and everything derived from it hold until
        # the next is taken.
        x = Signal(signed(16))
        x_previous = Signal(signed(16))
        ones_magnitude = x ^ x[15].replicate(16)  # |x| for x >= 0, |x| - 1 below
        m_bits = Cat(Const(1, 1), ones_magnitude[16 - MAGNITUDE_WIDTH:15])  # m, odd
        beyond_hysteresis = ones_magnitude[(HYSTERESIS.bit_length() - 1):15] != 0
        # Half-cycles: the samples since the last one ended change only when a sample
        # is taken (DONE), so everything derived from them holds through a sample.
        half_cycle_samples = Signal(range(HALF_CYCLE_MAX + 1))
        blanking = half_cycle_samples < BLANKING
        armed_rise = Signal()
        armed_fall = Signal()
        rising = armed_rise & x_previous[15] & ~x[15] & ~blanking
        falling = armed_fall & ~x_previous[15] & x[15] & ~blanking
        long_half_cycle = half_cycle_samples == HALF_CYCLE_MAX
        half_cycle_end = rising | falling | long_half_cycle
        timeout = long_half_cycle & ~rising & ~falling

        # The one-cycle RMS: two running sums of m², the older over the last two
        # half-cycles, the newer over the last. Adding to both is two turns of a
        # rotation through one adder, newer <- older + m², older <- newer. Once a
        # half-cycle ends, the older sum is the divider's quotient register: its
        # dividend first, then each quotient.
        older = Signal(32)
        newer = Signal(32)

        # The divider: [remainder : dividend bits] shifts left a bit per step and the
        # divisor is taken off when it fits; the quotient bit enters `older`.
        remainder = Signal(24)
        steps = Signal(range(_NCO_STEPS + 1))
        bit = (steps - 1)[:len(steps)]      # the bit of a streamed operand this step
        dividend_bit = Signal()
        divisor = Signal(24)
        dividing = Signal()
        shifted = Cat(dividend_bit, remainder)
        difference = Signal(26)
        m.d.comb += difference.eq(shifted - divisor)
        fits = dividing & ~difference[25]
        overflow = Signal()  # the mean square's quotient went past 32 bits: saturate
        quotient = Cat(fits | overflow, older[:31])  # `older` after this step

        def step():
            m.d.sync += [remainder.eq(Mux(fits, difference[:24], shifted[:24])),
                         steps.eq(steps - 1)]

        def divide(divisor_value, dividend_value):
            m.d.comb += [dividing.eq(1), divisor.eq(divisor_value),
                         dividend_bit.eq(dividend_value)]
            m.d.sync += older.eq(quotient)
            step()

        # Frequency.
        measuring = Signal()
        cycles = Signal(MEASUREMENT_CYCLES_LOG2)
        time = Signal(PERIOD_WIDTH)  # since the measurement's first crossing, 2**-10 samples
        period = Signal(PERIOD_WIDTH, init=self._nominal_period)
        measurements = Signal(16)
        valid = Signal()
        crossing_back = older[:INTERPOLATION_BITS]  # g, after the interpolation
        span = Signal(PERIOD_WIDTH)
        m.d.comb += span.eq(time - crossing_back)

        # Urms(1/2) and events. The ratio (Urms(1/2)/Udin)² comes out of the divider
        # most significant bit first, and is compared with each event's level bit by
        # bit as it does: `decided` at the first bit that differs, `above` its sense.
        half_cycle_ms = Signal(HALF_CYCLE_MS_WIDTH)
        sag = Signal()
        swell = Signal()
        interruption = Signal()
        extreme = Signal(HALF_CYCLE_MS_WIDTH)
        declared = self._register("declared_voltage_squared").value
        half_cycles = Signal(range(3))  # ended since reset, up to 2: then windows are whole
        comparisons = {}  # per event: decided, above, and the level's bit this step
        for name, active in (("sag", sag), ("swell", swell), ("interruption", interruption)):
            level = Mux(active, Const(thresholds[f"{name}_end"], _RATIO_STEPS),
                        Const(thresholds[f"{name}_start"], _RATIO_STEPS))
            comparisons[name] = (Signal(name=f"{name}_decided"), Signal(name=f"{name}_above"),
                                 level.bit_select(bit[:5], 1))
        below = {name: decided & ~above for name, (decided, above, _) in comparisons.items()}
        new_sag, new_interruption = below["sag"], below["interruption"]
        new_swell = comparisons["swell"][0] & comparisons["swell"][1]
        below_extreme = half_cycle_ms < extreme

        # Event edges in the order they are sent: ends (inner first), then starts.
        slot = Signal(range(6))
        edges = Cat(interruption & ~new_interruption, sag & ~new_sag, swell & ~new_swell,
                    ~sag & new_sag, ~swell & new_swell, ~interruption & new_interruption)
        edge = edges.bit_select(slot, 1)
        with m.Switch(slot):
            for number, kind in enumerate([EventKind.INTERRUPTION, EventKind.SAG, EventKind.SWELL,
                                           EventKind.SAG, EventKind.SWELL, EventKind.INTERRUPTION]):
                with m.Case(number):
                    m.d.comb += self.events.payload.kind.eq(kind)
        m.d.comb += [
            self.events.payload.end.eq(slot < 3),
            self.events.payload.value.eq(extreme),
        ]

        # Squaring: a pass per bit of m, adding m << index (the remainder) to both sums.
        index = Signal(range(MAGNITUDE_WIDTH + 1))
        second = Signal()  # the second turn of a rotation

        def rotate():
            m.d.sync += [older.eq(newer), newer.eq(older + remainder)]

        def load_magnitude():  # m enters the remainder, most significant bit first
            m.d.sync += [remainder.eq(0), steps.eq(MAGNITUDE_WIDTH)]
            m.next = "LOAD"

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.samples.ready.eq(1)
                with m.If(self.samples.valid):
                    m.d.sync += x.eq(self.samples.payload >> SAMPLE_SHIFT)
                    m.next = "BEGIN"

            with m.State("BEGIN"):
                with m.If(half_cycle_end):
                    m.d.sync += [remainder.eq(0), steps.eq(_MEAN_STEPS)]
                    m.next = "MEAN"
                with m.Else():
                    load_magnitude()

            with m.State("MEAN"):  # (S << 24) // period, saturated to 32 bits
                # S enters most significant bit first, then zeros; the quotient leaves
                # it as it goes. A quotient bit above the 32 kept (in the first 24
                # steps) is an overflow, and every bit after it is made a 1.
                divide(period, older[31] & (steps > _MEAN_SHIFT))
                with m.If(fits & (steps > 32)):
                    m.d.sync += overflow.eq(1)
                with m.If(steps == 1):
                    m.d.sync += [half_cycle_ms.eq(quotient[-HALF_CYCLE_MS_WIDTH:]),
                                 overflow.eq(0)]
                    with m.If(half_cycles != 2):
                        m.d.sync += half_cycles.eq(half_cycles + 1)
                    with m.If((declared != 0) & (half_cycles == 2)):
                        m.d.sync += [remainder.eq(0), steps.eq(_RATIO_STEPS)]
                        m.d.sync += [decided.eq(0) for decided, _, _ in comparisons.values()]
                        m.next = "RATIO"
                    with m.Else():
                        m.next = "CROSSING"

            with m.State("RATIO"):  # mean square // declared, compared as it comes
                divide(declared, older[31])
                for decided, above, level_bit in comparisons.values():
                    with m.If(~decided & (fits != level_bit)):
                        m.d.sync += [decided.eq(1), above.eq(fits)]
                with m.If(steps == 1):
                    m.next = "EVALUATE"

            with m.State("EVALUATE"):  # the extreme of an event in progress
                with m.If(sag & below_extreme | swell & ~below_extreme):
                    m.d.sync += extreme.eq(half_cycle_ms)
                m.d.sync += slot.eq(0)
                m.next = "EMIT"

            with m.State("EMIT"):
                m.d.comb += self.events.valid.eq(edge)
                with m.If(~edge | self.events.ready):
                    m.d.sync += slot.eq(slot + 1)
                    with m.If((slot == 2) & (~sag & new_sag | ~swell & new_swell)):
                        m.d.sync += extreme.eq(half_cycle_ms)  # the ends are out
                    with m.If(slot == 5):
                        m.d.sync += [sag.eq(new_sag), swell.eq(new_swell),
                                     interruption.eq(new_interruption)]
                        m.next = "CROSSING"

            with m.State("CROSSING"):  # a rising crossing: interpolate it
                with m.If(rising):
                    m.d.sync += [remainder.eq(0), steps.eq(_INTERPOLATION_STEPS)]
                    m.next = "INTERPOLATE"
                with m.Else():
                    m.next = "ROTATE"

            with m.State("INTERPOLATE"):  # g = (x << 10) // (x - x_previous)
                divide(x - x_previous, Cat(Const(0, INTERPOLATION_BITS), x).bit_select(bit, 1))
                with m.If(steps == 1):
                    m.next = "MEASURE"

            with m.State("MEASURE"):  # `time` restarts at a measurement's first crossing
                m.next = "ROTATE"
                with m.If(~measuring):
                    m.d.sync += [measuring.eq(1), cycles.eq(0), time.eq(crossing_back)]
                with m.Else():
                    m.d.sync += cycles.eq(cycles + 1)
                    with m.If(cycles == (1 << MEASUREMENT_CYCLES_LOG2) - 1):
                        m.d.sync += [time.eq(crossing_back), period.eq(span),
                                     measurements.eq(measurements + 1), valid.eq(1),
                                     remainder.eq(0), steps.eq(_NCO_STEPS)]
                        m.next = "NCO"

            with m.State("NCO"):  # 2**48 // period: the dividend is a 1 and 48 zeros
                divide(period, steps == _NCO_STEPS)
                with m.If(steps == 1):
                    m.d.sync += self.nco_step.eq(quotient)
                    m.next = "ROTATE"

            with m.State("ROTATE"):  # a new half-cycle: the newer sum becomes the older
                m.d.sync += [older.eq(newer), newer.eq(0)]
                load_magnitude()

            with m.State("LOAD"):
                m.d.comb += dividend_bit.eq(m_bits.bit_select(bit, 1))
                step()
                with m.If(steps == 1):
                    m.d.sync += [index.eq(0), second.eq(0)]
                    m.next = "SQUARE"

            with m.State("SQUARE"):  # m² into both sums
                with m.If(m_bits.bit_select(index, 1) & ~second):
                    rotate()
                    m.d.sync += second.eq(1)
                with m.Else():
                    with m.If(second):
                        rotate()
                    m.d.sync += [second.eq(0), index.eq(index + 1)]
                    step()  # the remainder shifts left
                    with m.If(index == MAGNITUDE_WIDTH - 1):
                        m.next = "DONE"

            with m.State("DONE"):
                m.d.sync += [x_previous.eq(x),
                             half_cycle_samples.eq(Mux(half_cycle_end, 1, half_cycle_samples + 1)),
                             time[INTERPOLATION_BITS:].eq(time[INTERPOLATION_BITS:] + 1)]
                with m.If(beyond_hysteresis & x[15] & ~blanking):
                    m.d.sync += armed_rise.eq(1)
                with m.Elif(rising):
                    m.d.sync += armed_rise.eq(0)
                with m.If(beyond_hysteresis & ~x[15] & ~blanking):
                    m.d.sync += armed_fall.eq(1)
                with m.Elif(falling):
                    m.d.sync += armed_fall.eq(0)
                with m.If(timeout):
                    m.d.sync += [measuring.eq(0), valid.eq(0)]
                m.next = "IDLE"

        line_period = self._register("line_period")
        half_cycle = self._register("voltage_half_cycle")
        m.d.comb += [
            line_period.period.eq(period),
            line_period.measurements.eq(measurements),
            line_period.valid.eq(valid),
            half_cycle.mean_square.eq(half_cycle_ms),
            half_cycle.sag.eq(sag),
            half_cycle.swell.eq(swell),
            half_cycle.interruption.eq(interruption),
        ]
        return m
