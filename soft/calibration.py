"""One-point calibration against a reference, written under the seal by commands of
the local authority (the meter's security unit verifies each one).

With a known load applied (a calibrated source, or a reference meter's readings),
the meter's RMS voltage and current are averaged over a few windows and the scales
corrected so they read the reference. The energy quantum and no-load threshold
follow from the new scales, so power, energy and the creep limit stay consistent
(docs/metrology.md, "From registers to units"). If the reference also gives the
angle by which the current lags, the phase coefficient is corrected so that the
angle the meter measures, atan2(Q1, P), is the reference's: one point at any power
factor other than 1 or 0 serves, since P and Q1 come from the same compensated
samples.
"""

import math
import time
from dataclasses import dataclass

from refmeter.gateware.metrology.spec import (JOULES_PER_WH, PHASE_COEFFICIENT_FRACTION,
                                              PHASE_COEFFICIENT_WIDTH, SAMPLE_RATE_HZ)

from refmeter.gateware.security.authority import Authority

from .device import Meter
from .errors import MeterError
from .measurements import PhaseMeasurements, read_phase
from .security import KeySet, send_command

__all__ = ["GainCalibration", "PhaseAngleCalibration", "calibrate_gain", "calibrate_phase_angle",
           "wait_for_windows", "NOLOAD_WATTS"]

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


@dataclass(frozen=True)
class PhaseAngleCalibration:
    """What :func:`calibrate_phase_angle` measured and wrote."""

    phase: str
    measured_angle_deg: float
    registers: dict[str, tuple[int, int]]   #: name -> (old, new)


def wait_for_windows(meter: Meter, count: int, *, timeout_s: float,
                     counter: str = "windows_completed") -> None:
    """Return once ``count`` more windows (``counter``: measurement or fundamental
    windows) have been published."""
    target = int(meter.read(counter)) + count
    deadline = time.monotonic() + timeout_s
    while int(meter.read(counter)) < target:
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


def _require_open_seal(meter: Meter) -> None:
    if not meter.read("seal_status")["open"]:
        raise MeterError(f"meter at {meter.link.url}: the seal is closed, so calibration "
                         f"registers cannot be written; open the seal jumper first")


def _write(meter: Meter, keys: KeySet, updates: dict[str, int]) -> dict[str, tuple[int, int]]:
    """Write ``updates`` by local commands; return each register's (old, new) value."""
    changes = {}
    for name, value in updates.items():
        changes[name] = (int(meter.read(name)), value)
        send_command(meter, keys, Authority.LOCAL, name, value)
    return changes


def calibrate_gain(meter: Meter, keys: KeySet, *, voltage_v: float, current_a: float,
                   phase: str = "l1", windows: int = 5,
                   timeout_s: float = 60.0) -> GainCalibration:
    """Correct ``phase``'s scales so it reads ``voltage_v`` and ``current_a`` (RMS),
    writing them by commands under the local key of ``keys``.

    The seal must be open: otherwise nothing is measured or written and
    :class:`MeterError` says so. The first window after the call is skipped, since
    it may have started before the reference load was steady.
    """
    if voltage_v <= 0 or current_a <= 0:
        raise ValueError("Reference voltage and current must be positive")
    _require_open_seal(meter)
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
    return GainCalibration(phase, measured_voltage, measured_current,
                           _write(meter, keys, updates))


def calibrate_phase_angle(meter: Meter, keys: KeySet, *, angle_deg: float, frequency_hz: float = 50.0,
                          phase: str = "l1", windows: int = 5,
                          timeout_s: float = 60.0) -> PhaseAngleCalibration:
    """Correct ``phase``'s phase coefficient so that it measures the reference's
    angle ``angle_deg`` (current lagging, degrees) at ``frequency_hz``.

    The angle is measured as atan2(sum of Q1, sum of P) over ``windows`` fundamental
    windows, after skipping one. A reference too near PF 1 or 0 (within 5 degrees)
    is refused: there, one of P and Q1 hardly changes with the angle.
    """
    if min(abs(math.sin(math.radians(angle_deg))), abs(math.cos(math.radians(angle_deg)))) \
            < math.sin(math.radians(5)):
        raise ValueError(f"A reference angle of {angle_deg:g} degrees is too near PF 1 or 0 to "
                         f"calibrate the phase from; use one like 60")
    _require_open_seal(meter)
    counter = "fundamental_windows_completed"
    wait_for_windows(meter, 1, timeout_s=timeout_s, counter=counter)
    active = reactive = 0.0
    for _ in range(windows):
        wait_for_windows(meter, 1, timeout_s=timeout_s, counter=counter)
        reading = read_phase(meter, phase)
        active += reading.active_power_w
        reactive += reading.reactive_power_var
    if math.hypot(active, reactive) == 0:
        raise MeterError(f"meter at {meter.link.url} measures no power on {phase}: apply the "
                         f"reference load before calibrating")
    measured = math.atan2(reactive, active)
    # The current's all-pass delays it by (1 - a) / (1 + a) samples; a current that
    # seems to lag too much is delayed too much.
    scale = 1 << PHASE_COEFFICIENT_FRACTION
    name = f"phase_coefficient_{phase}"
    coefficient = int(meter.read(name)) / scale
    delay = (1 - coefficient) / (1 + coefficient)
    delay += (math.radians(angle_deg) - measured) / (2 * math.pi * frequency_hz / SAMPLE_RATE_HZ)
    new = round((1 - delay) / (1 + delay) * scale)
    limit = 1 << (PHASE_COEFFICIENT_WIDTH - 1)
    if not -limit <= new < limit:
        raise MeterError(f"meter at {meter.link.url} measures {math.degrees(measured):.2f} "
                         f"degrees for a reference of {angle_deg:g}: more than the phase "
                         f"compensation can correct; check the wiring")
    return PhaseAngleCalibration(phase, math.degrees(measured), _write(meter, keys, {name: new}))
