"""One-point gain calibration against a reference, written under the seal.

With a known load applied (at PF 1: a calibrated source, or a reference meter's
readings), the meter's RMS voltage and current are averaged over a few windows and
the scales corrected so they read the reference. The energy quantum and no-load
threshold follow from the new scales, so power, energy and the creep limit stay
consistent (docs/metrology.md, "From registers to units").
"""

import time
from dataclasses import dataclass

from refmeter.gateware.metrology.spec import JOULES_PER_WH, SAMPLE_RATE_HZ

from .device import Meter
from .errors import MeterError
from .measurements import PhaseMeasurements, read_phase

__all__ = ["GainCalibration", "calibrate_gain", "wait_for_windows", "NOLOAD_WATTS"]

#: Creep limit written with every calibration: below 0.001 In at PF 0.25 (0.575 W at
#: 230 V, 10 A), far above the noise of a window at no load (mW).
NOLOAD_WATTS = 0.25


@dataclass(frozen=True)
class GainCalibration:
    """What :func:`calibrate_gain` measured and wrote."""

    phase: str
    measured_voltage_v: float
    measured_current_a: float
    registers: dict[str, tuple[int, int]]   #: name -> (old, new)


def wait_for_windows(meter: Meter, count: int, *, timeout_s: float) -> None:
    """Return once ``count`` more measurement windows have been published."""
    target = int(meter.read("windows_completed")) + count
    deadline = time.monotonic() + timeout_s
    while int(meter.read("windows_completed")) < target:
        if time.monotonic() > deadline:
            raise MeterError(f"meter at {meter.link.url} published fewer than {count} "
                             f"windows in {timeout_s:g} s")
        time.sleep(0.1)


def _averaged(meter: Meter, phase: str, windows: int, timeout_s: float) -> list[PhaseMeasurements]:
    readings = []
    for _ in range(windows):
        wait_for_windows(meter, 1, timeout_s=timeout_s)
        readings.append(read_phase(meter, phase))
    return readings


def calibrate_gain(meter: Meter, *, voltage_v: float, current_a: float, phase: str = "l1",
                   windows: int = 5, timeout_s: float = 60.0) -> GainCalibration:
    """Correct ``phase``'s scales so it reads ``voltage_v`` and ``current_a`` (RMS).

    The seal must be open: otherwise nothing is measured or written and
    :class:`MeterError` says so. The first window after the call is skipped, since
    it may have started before the reference load was steady.
    """
    if voltage_v <= 0 or current_a <= 0:
        raise ValueError("Reference voltage and current must be positive")
    if not meter.read("seal_status")["open"]:
        raise MeterError(f"meter at {meter.link.url}: the seal is closed, so calibration "
                         f"registers cannot be written; open the seal jumper first")
    wait_for_windows(meter, 1, timeout_s=timeout_s)
    readings = _averaged(meter, phase, windows, timeout_s)
    measured_voltage = sum(r.voltage_rms_v for r in readings) / len(readings)
    measured_current = sum(r.current_rms_a for r in readings) / len(readings)
    if measured_voltage <= 0 or measured_current <= 0:
        raise MeterError(f"meter at {meter.link.url} measures no voltage or current on "
                         f"{phase}: apply the reference load before calibrating")

    voltage_scale = int(meter.read(f"voltage_scale_{phase}"))
    current_scale = int(meter.read(f"current_scale_{phase}"))
    new_voltage_scale = round(voltage_scale * voltage_v / measured_voltage)
    new_current_scale = round(current_scale * current_a / measured_current)
    watts_per_raw = new_voltage_scale * new_current_scale * 1e-24
    window = int(meter.read("window_samples")) or 1
    updates = {
        f"voltage_scale_{phase}": new_voltage_scale,
        f"current_scale_{phase}": new_current_scale,
        f"energy_quantum_{phase}": round(JOULES_PER_WH * SAMPLE_RATE_HZ / watts_per_raw),
        f"noload_threshold_{phase}": round(NOLOAD_WATTS * window / watts_per_raw),
    }
    changes = {}
    for name, value in updates.items():
        changes[name] = (int(meter.read(name)), value)
        meter.write(name, value)
    return GainCalibration(phase, measured_voltage, measured_current, changes)
