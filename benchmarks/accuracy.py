"""Metrology accuracy at the IEC 62053-21/22/24 and EN 50470-3 test points.

    python benchmarks/accuracy.py                    # 100 seeds per point, some minutes
    python benchmarks/accuracy.py --seeds 10 --adc 88 --plot build/accuracy-88dB.png
    python benchmarks/accuracy.py --sections frequency creep

Runs the bit-exact models of the gateware (refmeter.sim.metrology and
refmeter.sim.line) behind a simulated front end with gain, offset and skew errors,
a sample clock 23 ppm fast and not locked to the line, and the noise of the best
metering ADCs (101 dB, or the 88 dB preset), after a one-point calibration at Un,
In. Each seed is a separate run with its own start phase and noise. References
are computed from the signal's definition, never from the samples: the
closed-form integral of v(t)*i(t) for active energy, V1 I1 sin(phi1) t for the
fundamental reactive energy, the RMS of the defined harmonics, the defined line
frequency. Prints, per point, the mean error, mean +/- 3 sigma and the worst seed;
writes a plot of error against current for each power factor, like a test
certificate.
"""

import argparse
import math
import time
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from refmeter.gateware.metrology import spec
from refmeter.gateware.metrology.line import MEASUREMENT_CYCLES_LOG2
from refmeter.sim.accuracy import JOULES_PER_WH, MeterUnderTest, nominal_calibration
from refmeter.sim.analog import AS_BUILT, Harmonic, Load, reference_reactive_power

UN, IN, IMAX, FN = 230.0, 10.0, 100.0, 50.0   # V, A, A, Hz: a direct-connected 10(100) A meter
METER_CONSTANT = 1000                          # imp/kWh: one quantum is 1 Wh
#: ADC presets: signal-to-noise ratio of a full-scale sine, dB.
ADC_PRESETS = (101, 88)

POWER_FACTORS = {"PF 1": 0.0, "PF 0.5 ind": 60.0, "PF 0.8 cap": -36.87, "PF 0.25 ind": 75.52}
SINES = {"sin 1 ind": 90.0, "sin 0.5 ind": 30.0, "sin 0.5 cap": -30.0}
CURRENTS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, IMAX / IN)
#: Q1 from Imax / 6000 up.
REACTIVE_CURRENTS = (IMAX / IN / 6000,) + CURRENTS[2:]
VOLTAGES = (0.001, 0.01, 0.1, 0.5, 0.9, 1.0, 1.1, 1.15)
FIFTH = (Harmonic(5, 0.10),), (Harmonic(5, 0.40),)
MIXED = ((Harmonic(3, 0.03, 30), Harmonic(5, 0.05, -60), Harmonic(7, 0.03, 120),
          Harmonic(11, 0.015, 0), Harmonic(13, 0.01, 45)),
         (Harmonic(3, 0.30, 10), Harmonic(5, 0.20, -40), Harmonic(7, 0.10, 100),
          Harmonic(9, 0.05, 0), Harmonic(11, 0.04, 60), Harmonic(13, 0.03, -30)))
#: 10 % THD (9.95 %): odd harmonics as rectifier loads leave them, at phases drawn
#: per seed.
THD_10 = tuple(Harmonic(order, fraction) for order, fraction in
               ((3, 0.05), (5, 0.06), (7, 0.05), (11, 0.03), (13, 0.02)))
#: Power (W or var) below which a point measures for longer than 10 s: 0.01 In at PF 1.
FULL_TIME_POWER = UN * 0.01 * IN


@dataclass(frozen=True)
class Section:
    """A table of the output: what its errors are, in what unit, and how judged."""

    heading: str
    unit: str              #: of the error columns
    scale: float           #: unit per error (errors are relative, or Hz for the frequency)
    judge_worst: bool = False  #: the worst seed must meet the goal too, not only +/- 3 sigma


#: The sections of test points, in the order they run; a point's quantity names its
#: section. The no-load and starting-current tests ("creep") count pulses and run last.
SECTIONS = {
    "active": Section("Active energy", "%", 100),
    "reactive": Section("Fundamental reactive energy Q1", "%", 100),
    "voltage_rms": Section("RMS voltage", "%", 100),
    "current_rms": Section("RMS current", "%", 100),
    # Issue 3: within 1 mHz over 45-65 Hz with 10 % THD, which the worst seed meets too.
    "frequency": Section("Line frequency, first 64-cycle measurement at the ADC's real rate",
                         "mHz", 1000, judge_worst=True),
}


@dataclass(frozen=True)
class Point:
    """A test point: a load, the quantity whose error it reports, and the goal."""

    name: str
    load: Load
    quantity: str   #: a key of SECTIONS
    goal: float     #: |error| allowed at mean +/- 3 sigma; 0 for a point reported without one
    series: str = ""  #: the current sweep it belongs to, if any (a curve of the plot)

    @property
    def current_fraction(self) -> float:
        return self.load.current_rms / IN

    @property
    def interval_s(self) -> float:
        """Measuring time: 10 s, and longer below 23 W (or var), where the ADC's noise
        dominates, so that every energy point collects as much energy; for the
        frequency, the line monitor's 64 cycles."""
        if self.quantity == "frequency":
            return (1 << MEASUREMENT_CYCLES_LOG2) / self.load.frequency_hz
        if self.quantity == "active":
            power = self.load.voltage_rms * self.load.current_rms * math.cos(math.radians(self.load.phase_deg))
        elif self.quantity == "reactive":
            power = abs(reference_reactive_power(self.load))
        else:
            return 10.0
        return max(10.0, 10.0 * FULL_TIME_POWER / power)


def _energy_goal(fraction: float) -> float:
    """0.05 % from 0.01 In, 0.1 % below."""
    return 0.0005 if fraction >= 0.01 - 1e-12 else 0.001


def test_points() -> list[Point]:
    points = [Point(f"{fraction:g} In {pf}", Load(UN, fraction * IN, angle), "active",
                    _energy_goal(fraction), pf)
              for pf, angle in POWER_FACTORS.items() for fraction in CURRENTS]
    for pf in ("PF 1", "PF 0.5 ind"):
        angle = POWER_FACTORS[pf]
        points += [Point(f"{scale:g} Un In {pf}", Load(scale * UN, IN, angle), "active", 0.0005)
                   for scale in (0.9, 1.1)]
        points += [Point(f"{f:g} Hz In {pf}", Load(UN, IN, angle, f), "active", 0.0005)
                   for f in (49.0, 51.0)]
    points += [Point(f"{f:g} Hz In PF 0.5 ind", Load(UN, IN, 60.0, f), "active", 0.0005)
               for f in (45.0, 55.0, 60.0, 65.0)]
    points += [Point("10% 5th U, 40% 5th I, In PF 1", Load(UN, IN, 0.0, FN, *FIFTH), "active", 0.0005),
               Point("3rd-13th mix, In PF 1", Load(UN, IN, 0.0, FN, *MIXED), "active", 0.0005),
               Point("3rd-13th mix, 0.1 In PF 0.5 ind", Load(UN, 0.1 * IN, 60.0, FN, *MIXED),
                     "active", 0.0005)]
    # Q1: 0.1 % over 6000:1, IEC 62053-24's sin phi points, voltage, frequency, harmonics.
    points += [Point(f"{fraction:.3g} In {sine}", Load(UN, fraction * IN, angle), "reactive", 0.001,
                     sine)
               for sine, angle in SINES.items() for fraction in REACTIVE_CURRENTS]
    points += [Point(f"{scale:g} Un In sin 1 ind", Load(scale * UN, IN, 90.0), "reactive", 0.001)
               for scale in (0.9, 1.1)]
    points += [Point(f"{f:g} Hz In sin 0.5 ind", Load(UN, IN, 30.0, f), "reactive", 0.001)
               for f in (45.0, 49.0, 51.0, 55.0, 60.0, 65.0)]
    points += [Point("10% 5th U, 40% 5th I, In sin 1 ind", Load(UN, IN, 90.0, FN, *FIFTH),
                     "reactive", 0.001),
               Point("3rd-13th mix, In sin 0.5 ind", Load(UN, IN, 30.0, FN, *MIXED), "reactive", 0.001)]
    # RMS: 0.05 % over 1000:1 (voltage down to Un / 1000, current to Imax / 1000).
    points += [Point(f"Vrms {scale:g} Un", Load(scale * UN, IN), "voltage_rms", 0.0005)
               for scale in VOLTAGES]
    points += [Point("Vrms 3rd-13th mix", Load(UN, IN, 0.0, FN, *MIXED), "voltage_rms", 0.0005)]
    points += [Point(f"Irms {fraction:g} In", Load(UN, fraction * IN), "current_rms",
                     0.0005 if fraction >= IMAX / IN / 1000 - 1e-12 else 0.0)
               for fraction in CURRENTS]
    points += [Point("Irms 3rd-13th mix", Load(UN, IN, 0.0, FN, *MIXED), "current_rms", 0.0005)]
    # Frequency: within 1 mHz, 45 to 65 Hz in 1 Hz steps (49, 50 and 51 Hz among them),
    # without and with 10 % THD.
    points += [Point(f"{f:g} Hz{' 10% THD' if harmonics else ''}",
                     Load(UN, 0.0, frequency_hz=f, voltage_harmonics=harmonics), "frequency", 1e-3)
               for f in np.arange(45.0, 66.0) for harmonics in ((), THD_10)]
    return points


def calibrated_meter(rng: np.random.Generator, snr_db: float) -> MeterUnderTest:
    front_end = replace(AS_BUILT, snr_db=snr_db)
    meter = MeterUnderTest(front_end, nominal_calibration(front_end))
    meter.calibrate(Load(UN, IN), rng)
    return meter


def run_point(meter: MeterUnderTest, point: Point, seeds: int) -> np.ndarray:
    """The point's error for each seed: relative, or Hz for the frequency."""
    errors = []
    for seed in range(seeds):
        rng = np.random.default_rng([seed, zlib.crc32(point.name.encode())])
        if point.quantity == "frequency":
            load = replace(point.load, voltage_harmonics=tuple(
                replace(harmonic, phase_deg=rng.uniform(-180, 180))
                for harmonic in point.load.voltage_harmonics))
            errors.append(meter.measure_frequency(load, rng) - load.frequency_hz)
        else:
            reading, = meter.measure(point.load, interval_s=point.interval_s, intervals=1, rng=rng)
            errors.append(getattr(reading, f"{point.quantity}_error"))
    return np.array(errors)


def creep_and_start(meter: MeterUnderTest, rng: np.random.Generator) -> list[str]:
    """IEC 62053-21 no-load (115 % Un, no current) and starting-current tests."""
    lines = []
    # Test times from IEC 62053-21: no load 600e6 / (k m Un Imax) min; starting,
    # 1.5 times the time of one pulse at the starting current, 60e3 / (k m Un Ist) min.
    noload_min = 600e6 / (METER_CONSTANT * UN * IMAX)
    start_current = 0.001 * IN
    start_min = 1.5 * 60e3 / (METER_CONSTANT * UN * start_current)
    for name, load, minutes, passes in (
            ("no load, 1.15 Un", Load(1.15 * UN, 0.0), noload_min, lambda quanta: quanta <= 1),
            (f"starting current {start_current * 1000:g} mA", Load(UN, start_current), start_min,
             lambda quanta: quanta >= 1)):
        reading, = meter.measure(load, interval_s=minutes * 60, intervals=1, rng=rng)
        quanta = math.floor(abs(reading.active) / JOULES_PER_WH)
        lines.append(f"{name:<34} {minutes:6.1f} min  {quanta} pulse(s) at {METER_CONSTANT} imp/kWh"
                     f"  {'pass' if passes(quanta) else 'FAIL'}")
    return lines


def plot(results: list[tuple[Point, np.ndarray]], path: Path, snr_db: float) -> None:
    """Error against current for each sweep, active and reactive side by side."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, panels = pyplot.subplots(1, 2, figsize=(14, 5), sharey=True)
    for axes, quantity, title in ((panels[0], "active", "active energy"),
                                  (panels[1], "reactive", "fundamental reactive energy Q1")):
        sweeps = {point.series: [] for point, _ in results if point.quantity == quantity and point.series}
        for point, errors in results:
            if point.quantity == quantity and point.series:
                sweeps[point.series].append((point.current_fraction, errors))
        for series, rows in sweeps.items():
            fractions = np.array([fraction for fraction, _ in rows])
            means = np.array([errors.mean() for _, errors in rows]) * 100
            spreads = np.array([3 * errors.std() for _, errors in rows]) * 100
            axes.errorbar(fractions, means, yerr=spreads, marker="o", capsize=3, label=series)
        goals = sorted({(point.current_fraction, point.goal) for point, _ in results
                        if point.quantity == quantity and point.series})
        fractions = np.array([fraction for fraction, _ in goals])
        limit = np.array([goal for _, goal in goals]) * 100
        axes.step(fractions, limit, "k--", where="post", linewidth=1, label="goal")
        axes.step(fractions, -limit, "k--", where="post", linewidth=1)
        axes.set_xscale("log")
        axes.set_xlabel("current / In (In = 10 A, Imax = 100 A)")
        axes.set_title(f"refmeter {title}, {snr_db:g} dB ADC, Un 230 V 50 Hz")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
    panels[0].set_ylabel("error, %  (mean over seeds, bars: 3 sigma)")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120, bbox_inches="tight")


def print_row(point: Point, errors: np.ndarray) -> bool | None:
    """Print a point's line of its section's table; whether it met its goal (None:
    it has none)."""
    section = SECTIONS[point.quantity]
    mean, sigma = errors.mean(), errors.std()
    low, high = mean - 3 * sigma, mean + 3 * sigma
    worst = errors[np.abs(errors).argmax()]
    ok = None
    verdict = f"{'-':>6}"
    if point.goal:
        ok = max(abs(low), abs(high), abs(worst) if section.judge_worst else 0) <= point.goal
        verdict = f"{point.goal * section.scale:6.2f}  {'pass' if ok else 'MISS'}"
    print(f"{point.name:<34} {point.interval_s:5.0f}s  " + "  ".join(
        f"{value * section.scale:{width}.4f}" for value, width in
        ((mean, 8), (low, 10), (high, 10), (worst, 8))) + f"  {verdict}", flush=True)
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100, help="runs per test point (default 100)")
    parser.add_argument("--adc", type=int, choices=ADC_PRESETS, default=ADC_PRESETS[0],
                        help="ADC signal-to-noise preset, dB (default 101)")
    parser.add_argument("--plot", type=Path, default=Path("build/accuracy.png"),
                        help="where to write the error plot of the active and reactive sections "
                             "(default build/accuracy.png)")
    parser.add_argument("--sections", nargs="+", choices=(*SECTIONS, "creep"),
                        default=(*SECTIONS, "creep"), metavar="SECTION",
                        help=f"the sections to run, of {', '.join((*SECTIONS, 'creep'))} "
                             f"(default all; creep: no load and starting current)")
    args = parser.parse_args()

    started = time.monotonic()
    meter = calibrated_meter(np.random.default_rng(2026), args.adc)
    calibration = meter.calibration
    print(f"{args.adc} dB ADC. Calibrated at {UN:g} V, {IN:g} A: energy quantum "
          f"{calibration.energy_quantum} raw/Wh, phase coefficient {calibration.phase_coefficient} "
          f"(Q1.17), {meter.voltage_scale * 1e12:.0f} pV and {meter.current_scale * 1e12:.0f} pA per code")
    results, verdicts = [], []
    quantity = None
    for point in test_points():
        if point.quantity not in args.sections:
            continue
        if point.quantity != quantity:
            quantity = point.quantity
            section = SECTIONS[quantity]
            print(f"\n{section.heading} (error, {section.unit})\n{'test point':<34} {'time':>6}  "
                  f"{'mean':>8}  {'-3 sigma':>10}  {'+3 sigma':>10}  {'worst':>8}  {'goal':>6}")
        errors = run_point(meter, point, args.seeds)
        results.append((point, errors))
        verdicts.append(print_row(point, errors))
    frequencies = [point.load.frequency_hz for point, _ in results if point.quantity == "frequency"]
    if frequencies:
        # The host divides the period by the nominal rate until the sample clock is
        # calibrated: the crystal's error then adds to the measurement's.
        offset = spec.SAMPLE_RATE_HZ / meter.sample_rate - 1
        print(f"A host dividing by the nominal {spec.SAMPLE_RATE_HZ} Hz adds the crystal's "
              f"{offset * 1e6:+.0f} ppm: " + ", ".join(
                  f"{f * offset * 1e3:+.2f} mHz at {f:g} Hz" for f in (min(frequencies), max(frequencies)))
              + ".")
    if "creep" in args.sections:
        print()
        for line in creep_and_start(meter, np.random.default_rng(7)):
            print(line)
    if any(point.series for point, _ in results):
        plot(results, args.plot, args.adc)
        print(f"plot: {args.plot}")
    judged = [ok for ok in verdicts if ok is not None]
    print(f"{sum(judged)}/{len(judged)} points within their goal at mean +/- 3 sigma "
          f"(frequency: and the worst seed) over {args.seeds} seeds; "
          f"{time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
