"""Measurements in SI units, from the metrology's raw registers and calibration.

The gateware publishes, per phase and per window, sums of v*i, v*v and i*i in ADC
codes; the calibration registers (written under the seal) say what a code means.
This module does the arithmetic of docs/metrology.md, "From registers to units".
"""

import math
from dataclasses import asdict, dataclass

from refmeter.gateware.metrology.core import PHASE_NAMES, QUADRANTS
from refmeter.gateware.metrology.line import PERIOD_FRACTION
from refmeter.gateware.metrology.spec import COUNTER_WIDTH, FUNDAMENTAL_WINDOW_LOG2, SAMPLE_RATE_HZ

from .device import Meter
from .errors import MeterError
from .events import half_cycle_voltage

__all__ = ["PhaseMeasurements", "TotalMeasurements", "read_phase", "read_totals", "phases"]

#: Tries to read one window's sums while no new window is published meanwhile.
_CONSISTENT_READ_TRIES = 5


@dataclass(frozen=True)
class PhaseMeasurements:
    """One phase over the last measurement window."""

    phase: str
    windows_completed: int              #: 0: nothing measured yet (the values are 0)
    window_s: float
    voltage_rms_v: float
    current_rms_a: float
    active_power_w: float
    apparent_power_va: float
    power_factor: float | None          #: P / S; None without current
    active_energy_import_wh: int        #: +A register (wraps at 2**32 Wh)
    active_energy_export_wh: int        #: -A register
    energy_pending_wh: float            #: signed energy not yet counted in either
    reactive_power_var: float           #: Q1 over the last fundamental window, + lagging
    reactive_energy_import_varh: int    #: +R: quadrants I + II (wraps at 2**32 varh)
    reactive_energy_export_varh: int    #: -R: quadrants III + IV
    reactive_energy_quadrants_varh: tuple[int, int, int, int]  #: I, II, III, IV
    reactive_pending_varh: float        #: signed reactive energy not yet counted
    frequency_hz: float | None          #: mean over the last 64 cycles; None without voltage
    voltage_half_cycle_v: float         #: Urms(1/2): over the last cycle, refreshed each half-cycle
    voltage_events: tuple[str, ...]     #: events in progress: "sag", "swell", "interruption"

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TotalMeasurements:
    """All phases together: the meter's totals, and its neutral current."""

    active_power_w: float               #: sum of the phases' last-window P
    reactive_power_var: float           #: sum of the phases' last Q1
    active_energy_import_wh: int        #: +A of the net power of all phases (wraps at 2**32 Wh)
    active_energy_export_wh: int        #: -A of the net power of all phases
    active_held_back_wh: int            #: net phase quanta the totals have not yet counted
    reactive_energy_import_varh: int    #: +R of the net reactive power of all phases
    reactive_energy_export_varh: int    #: -R of the net reactive power of all phases
    reactive_held_back_varh: int        #: net phase quanta the totals have not yet counted
    neutral_current_rms_a: float | None  #: last window; None on a meter without a neutral input

    def to_json(self) -> dict:
        return asdict(self)


def phases(meter: Meter) -> list[str]:
    """The phases the meter's register map measures (``l1``, ...)."""
    names = {register.name for _, register in meter.register_map}
    return [phase for phase in PHASE_NAMES if f"window_active_{phase}" in names]


def read_phase(meter: Meter, phase: str = "l1") -> PhaseMeasurements:
    """Read phase ``phase``'s last window and energy registers, in SI units.

    The window sums are read between two reads of ``windows_completed``; if a new
    window was published meanwhile, they are read again, so the three sums always
    belong to one window.
    """
    for _ in range(_CONSISTENT_READ_TRIES):
        before = int(meter.read("windows_completed"))
        active = int(meter.read(f"window_active_{phase}"))
        voltage_squared = int(meter.read(f"window_voltage_squared_{phase}"))
        current_squared = int(meter.read(f"window_current_squared_{phase}"))
        if meter.read("windows_completed") == before:
            break
    else:
        raise MeterError(f"meter at {meter.link.url}: windows are published faster than they "
                         f"can be read; lengthen window_samples")
    window = int(meter.read("window_samples")) or 1
    volts_per_code = int(meter.read(f"voltage_scale_{phase}")) * 1e-12
    amps_per_code = int(meter.read(f"current_scale_{phase}")) * 1e-12
    voltage = volts_per_code * math.sqrt(voltage_squared / window)
    current = amps_per_code * math.sqrt(current_squared / window)
    power = volts_per_code * amps_per_code * active / window
    apparent = voltage * current
    quantum = int(meter.read(f"energy_quantum_{phase}")) or 1
    quadrants = tuple(int(meter.read(f"reactive_{quadrant}_varh_{phase}")) for quadrant in QUADRANTS)
    wrap = 1 << COUNTER_WIDTH
    line = meter.read(f"line_period_{phase}")
    half_cycle = meter.read(f"voltage_half_cycle_{phase}")
    return PhaseMeasurements(
        phase=phase,
        windows_completed=before,
        window_s=window / SAMPLE_RATE_HZ,
        voltage_rms_v=voltage,
        current_rms_a=current,
        active_power_w=power,
        apparent_power_va=apparent,
        power_factor=power / apparent if apparent > 0 else None,
        active_energy_import_wh=int(meter.read(f"active_import_wh_{phase}")),
        active_energy_export_wh=int(meter.read(f"active_export_wh_{phase}")),
        energy_pending_wh=int(meter.read(f"energy_fraction_{phase}")) / quantum,
        reactive_power_var=volts_per_code * amps_per_code * int(meter.read(f"window_reactive_{phase}"))
        / (1 << FUNDAMENTAL_WINDOW_LOG2),
        reactive_energy_import_varh=(quadrants[0] + quadrants[1]) % wrap,
        reactive_energy_export_varh=(quadrants[2] + quadrants[3]) % wrap,
        reactive_energy_quadrants_varh=quadrants,
        reactive_pending_varh=int(meter.read(f"reactive_fraction_{phase}")) / quantum,
        # The period is measured against the sample clock, taken to be nominal.
        frequency_hz=SAMPLE_RATE_HZ * (1 << PERIOD_FRACTION) / line["period"]
        if line["valid"] and line["period"] else None,
        voltage_half_cycle_v=half_cycle_voltage(half_cycle["mean_square"], volts_per_code),
        voltage_events=tuple(kind for kind in ("sag", "swell", "interruption") if half_cycle[kind]),
    )


def read_totals(meter: Meter, readings: list[PhaseMeasurements]) -> TotalMeasurements:
    """The meter's totals, with the sums of the phase ``readings`` (one per phase, from
    :func:`read_phase`) and the neutral current where the meter measures it."""
    balance = meter.read("total_balance")
    neutral = None
    if "window_current_squared_n" in {register.name for _, register in meter.register_map}:
        window = int(meter.read("window_samples")) or 1
        neutral = (int(meter.read("current_scale_n")) * 1e-12
                   * math.sqrt(int(meter.read("window_current_squared_n")) / window))
    return TotalMeasurements(
        active_power_w=sum(reading.active_power_w for reading in readings),
        reactive_power_var=sum(reading.reactive_power_var for reading in readings),
        active_energy_import_wh=int(meter.read("active_import_wh_total")),
        active_energy_export_wh=int(meter.read("active_export_wh_total")),
        active_held_back_wh=balance["active"],
        reactive_energy_import_varh=int(meter.read("reactive_import_varh_total")),
        reactive_energy_export_varh=int(meter.read("reactive_export_varh_total")),
        reactive_held_back_varh=balance["reactive"],
        neutral_current_rms_a=neutral,
    )
