"""Metrology accuracy at the IEC 62053-21/22/24 and EN 50470-3 test points.

    python benchmarks/accuracy.py                    # 100 seeds per point, some minutes
    python benchmarks/accuracy.py --seeds 10 --adc 88 --plot build/accuracy-88dB.png

Runs the bit-exact model of the gateware (refmeter.sim.metrology) behind a
simulated front end with gain, offset and skew errors and the noise of the best
metering ADCs (101 dB, or the 88 dB preset), after a one-point calibration at Un,
In. Each seed is a separate run with its own start phase and noise. References
are computed from the signal's definition, never from the samples: the
closed-form integral of v(t)*i(t) for active energy, V1 I1 sin(phi1) t for the
fundamental reactive energy, the RMS of the defined harmonics. Prints, per point,
the mean error and mean +/- 3 sigma over the seeds; writes a plot of error against
current for each power factor, like a test certificate.
"""

import argparse
import math
import time
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

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
#: Power (W or var) below which a point measures for longer than 10 s: 0.01 In at PF 1.
FULL_TIME_POWER = UN * 0.01 * IN


@dataclass(frozen=True)
class Point:
    """A test point: a load, the quantity whose error it reports, and the goal."""

    name: str
    load: Load
    quantity: str   #: "active", "reactive", "voltage_rms" or "current_rms" (a Reading's *_error)
    goal: float     #: |error| allowed at mean +/- 3 sigma; 0 for a point reported without one
    series: str = ""  #: the current sweep it belongs to, if any (a curve of the plot)

    @property
    def current_fraction(self) -> float:
        return self.load.current_rms / IN

    @property
    def interval_s(self) -> float:
        """Measuring time: 10 s, and longer below 23 W (or var), where the ADC's noise
        dominates, so that every energy point collects as much energy."""
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
    return points


def calibrated_meter(rng: np.random.Generator, snr_db: float) -> MeterUnderTest:
    front_end = replace(AS_BUILT, snr_db=snr_db)
    meter = MeterUnderTest(front_end, nominal_calibration(front_end))
    meter.calibrate(Load(UN, IN), rng)
    return meter


def run_point(meter: MeterUnderTest, point: Point, seeds: int) -> np.ndarray:
    """The point's error for each seed."""
    return np.array([
        getattr(reading, f"{point.quantity}_error")
        for seed in range(seeds)
        for reading in meter.measure(point.load, interval_s=point.interval_s, intervals=1,
                                     rng=np.random.default_rng([seed, zlib.crc32(point.name.encode())]))])


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100, help="runs per test point (default 100)")
    parser.add_argument("--adc", type=int, choices=ADC_PRESETS, default=ADC_PRESETS[0],
                        help="ADC signal-to-noise preset, dB (default 101)")
    parser.add_argument("--plot", type=Path, default=Path("build/accuracy.png"),
                        help="where to write the error plot (default build/accuracy.png)")
    args = parser.parse_args()

    started = time.monotonic()
    meter = calibrated_meter(np.random.default_rng(2026), args.adc)
    calibration = meter.calibration
    print(f"{args.adc} dB ADC. Calibrated at {UN:g} V, {IN:g} A: energy quantum "
          f"{calibration.energy_quantum} raw/Wh, phase coefficient {calibration.phase_coefficient} "
          f"(Q1.17), {meter.voltage_scale * 1e12:.0f} pV and {meter.current_scale * 1e12:.0f} pA per code")
    headings = {"active": "Active energy", "reactive": "Fundamental reactive energy Q1",
                "voltage_rms": "RMS voltage", "current_rms": "RMS current"}
    results, failures, judged = [], 0, 0
    quantity = None
    for point in test_points():
        if point.quantity != quantity:
            quantity = point.quantity
            print(f"\n{headings[quantity]}\n{'test point':<34} {'time':>6}  {'mean %':>8}  "
                  f"{'-3 sigma %':>10}  {'+3 sigma %':>10}  {'goal %':>6}")
        errors = run_point(meter, point, args.seeds)
        results.append((point, errors))
        low, high = errors.mean() - 3 * errors.std(), errors.mean() + 3 * errors.std()
        if point.goal:
            ok = max(abs(low), abs(high)) <= point.goal
            judged += 1
            failures += not ok
            verdict = f"{point.goal * 100:6.2f}  {'pass' if ok else 'MISS'}"
        else:
            verdict = f"{'-':>6}"
        print(f"{point.name:<34} {point.interval_s:5.0f}s  {errors.mean() * 100:8.4f}  {low * 100:10.4f}"
              f"  {high * 100:10.4f}  {verdict}", flush=True)
    print()
    for line in creep_and_start(meter, np.random.default_rng(7)):
        print(line)
    plot(results, args.plot, args.adc)
    print(f"{judged - failures}/{judged} points within their goal at mean +/- 3 sigma "
          f"over {args.seeds} seeds; plot: {args.plot}; {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
