"""Line frequency accuracy from 45 to 65 Hz, with and without 10 % THD.

    python benchmarks/frequency.py                 # 100 seeds per point, about a minute
    python benchmarks/frequency.py --seeds 20 --step 5

Runs the bit-exact model of LineMonitor (refmeter.sim.line) on the line voltage of
the as-built front end (gain and offset errors, the 101 dB ADC's noise, a sample
clock 23 ppm fast and not locked to the line). Each seed is a separate run with its
own start phase, noise and harmonic phases; its first measurement (64 cycles from
the first rising zero crossing) is compared with the line's defined frequency. The
frequency is the sample rate over the period: the error columns use the ADC's real
rate (the measurement's own error); the last column divides by the nominal 8000 Hz,
as a host that does not know its crystal's error would, which adds -23 ppm.
"""

import argparse
import time
from dataclasses import dataclass

import numpy as np

from refmeter.gateware.metrology import spec
from refmeter.gateware.metrology.line import MEASUREMENT_CYCLES_LOG2, PERIOD_FRACTION
from refmeter.sim.analog import AS_BUILT, Harmonic, Load
from refmeter.sim.line import LineModel

UN = 230.0                 # V
GOAL_HZ = 1e-3             # issue 3: within 1 mHz over 45-65 Hz with 10 % THD
#: 10 % THD (9.95 %): odd harmonics as rectifier loads leave them; phases are drawn
#: per seed.
THD_10 = ((3, 0.05), (5, 0.06), (7, 0.05), (11, 0.03), (13, 0.02))


@dataclass(frozen=True)
class FrequencyPoint:
    frequency_hz: float
    distorted: bool        #: with THD_10

    @property
    def name(self) -> str:
        return f"{self.frequency_hz:g} Hz{', 10% THD' if self.distorted else ''}"


def frequency_points(step_hz: float = 1.0) -> list[FrequencyPoint]:
    """45 to 65 Hz in steps of ``step_hz``, each without and with 10 % THD."""
    frequencies = np.arange(45.0, 65.0 + step_hz / 2, step_hz)
    return [FrequencyPoint(float(f), distorted) for f in frequencies for distorted in (False, True)]


def measurement_errors(point: FrequencyPoint, seeds: int) -> tuple[np.ndarray, np.ndarray]:
    """Hz: each seed's first measurement minus the line frequency, with the frequency
    taken at the ADC's real sample rate and at the nominal one."""
    sample_rate = AS_BUILT.sample_rate_hz
    # The first crossing comes within a cycle, the measurement 64 cycles after it.
    count = round(((1 << MEASUREMENT_CYCLES_LOG2) + 2) / point.frequency_hz * sample_rate)
    real, nominal = [], []
    for seed in range(seeds):
        rng = np.random.default_rng([seed, round(point.frequency_hz * 1000), point.distorted])
        harmonics = tuple(Harmonic(order, fraction, rng.uniform(-180, 180))
                          for order, fraction in THD_10) if point.distorted else ()
        load = Load(UN, 0.0, frequency_hz=point.frequency_hz, voltage_harmonics=harmonics)
        voltage, _ = AS_BUILT.sample(load, count, rng, rng.uniform(0, 1 / point.frequency_hz))
        run = LineModel(declared=0).run(voltage)
        if len(run.measurements) == 0:
            raise RuntimeError(f"{point.name}, seed {seed}: no measurement in {count} samples")
        cycles_per_sample = (1 << PERIOD_FRACTION) / int(run.measurements[0, 1])
        real.append(cycles_per_sample * sample_rate - point.frequency_hz)
        nominal.append(cycles_per_sample * spec.SAMPLE_RATE_HZ - point.frequency_hz)
    return np.array(real), np.array(nominal)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100, help="runs per point (default 100)")
    parser.add_argument("--step", type=float, default=1.0, help="frequency step, Hz (default 1)")
    args = parser.parse_args()

    started = time.monotonic()
    print(f"{'point':<18} {'mean mHz':>9} {'-3 sigma':>9} {'+3 sigma':>9} {'max |e|':>8}"
          f"  {'goal':>5}       {'at 8000 Hz: mean mHz':>20}")
    misses = 0
    points = frequency_points(args.step)
    for point in points:
        real, nominal = measurement_errors(point, args.seeds)
        low, high = real.mean() - 3 * real.std(), real.mean() + 3 * real.std()
        ok = max(abs(low), abs(high), np.abs(real).max()) <= GOAL_HZ
        misses += not ok
        print(f"{point.name:<18} {real.mean() * 1e3:9.4f} {low * 1e3:9.4f} {high * 1e3:9.4f}"
              f" {np.abs(real).max() * 1e3:8.4f}  {GOAL_HZ * 1e3:5.1f}  {'pass' if ok else 'MISS'}"
              f"  {nominal.mean() * 1e3:20.4f}", flush=True)
    print(f"{len(points) - misses}/{len(points)} points within {GOAL_HZ * 1e3:g} mHz at mean "
          f"+/- 3 sigma and at worst over {args.seeds} seeds; {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
