"""Gas: metered volume to energy, with the calorific value in force and its history.

GB gas is billed in kWh: ``kWh = m3 x 1.02264 x CV / 3.6``, where 1.02264 corrects
the volume to standard temperature and pressure, CV is the calorific value in MJ/m3
and 3.6 is MJ per kWh (The Gas (Calculation of Thermal Energy) Regulations 1996).
Each interval's energy is rounded once to a whole Wh, half to even, like every
energy quantity the billing engine takes. The CV changes over time: each value
takes effect at a UTC instant, and the whole history is kept for audit.
"""

import datetime
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Sequence

import numpy as np

__all__ = ["VOLUME_CORRECTION", "MJ_PER_KWH", "PLAUSIBLE_CV_MJ_PER_M3", "CalorificValue",
           "CalorificValueHistory"]

VOLUME_CORRECTION = Decimal("1.02264")
MJ_PER_KWH = Decimal("3.6")
#: Declared GB calorific values lie near 38-41 MJ/m3; outside this band a value is a
#: mistake or an attack (a unit slip, kWh for MJ, a digit lost), never the gas.
PLAUSIBLE_CV_MJ_PER_M3 = (Decimal("35"), Decimal("45"))

_UTC = datetime.timezone.utc


@dataclass(frozen=True)
class CalorificValue:
    """A calorific value, MJ/m3, in force from ``effective`` (UTC) until the next one."""

    effective: datetime.datetime
    mj_per_m3: Decimal
    received: datetime.datetime     #: when the meter's host accepted it (UTC), for audit
    source: str                     #: who sent it, e.g. the signer of an authenticated update


class CalorificValueHistory:
    """Every calorific value accepted, oldest effective time first; none is ever removed."""

    def __init__(self, band: tuple[Decimal, Decimal] = PLAUSIBLE_CV_MJ_PER_M3):
        self.band = band
        self._values: list[CalorificValue] = []

    @property
    def values(self) -> tuple[CalorificValue, ...]:
        return tuple(self._values)

    def add(self, value: CalorificValue) -> None:
        """Record a value; refused as :meth:`check` says, and then nothing is recorded."""
        self.check(value)
        self._values.append(value)

    def check(self, value: CalorificValue) -> None:
        """Refuse a value outside the plausible band, or not after the latest recorded."""
        low, high = self.band
        if not value.mj_per_m3.is_finite() or not low <= value.mj_per_m3 <= high:
            raise ValueError(f"calorific value {value.mj_per_m3} MJ/m3 is outside the plausible "
                             f"band {low} to {high} MJ/m3")
        if value.effective.utcoffset() is None:
            raise ValueError("a calorific value's effective time must be timezone-aware (UTC)")
        if self._values and value.effective <= self._values[-1].effective:
            raise ValueError(f"calorific value effective {value.effective.isoformat()} is not after "
                             f"the latest one, effective {self._values[-1].effective.isoformat()}")

    def at(self, instant: datetime.datetime) -> CalorificValue:
        """The value in force at an instant."""
        in_force = [value for value in self._values if value.effective <= instant]
        if not in_force:
            raise ValueError(f"no calorific value is in force at {instant.isoformat()}")
        return in_force[-1]

    def kwh(self, starts_s: "Sequence[int] | np.ndarray", volume_m3: "Sequence[float] | np.ndarray") -> np.ndarray:
        """Energy, kWh, of the volume (m3, corrected for nothing yet) metered in each
        interval, with the calorific value in force at the interval's start."""
        energy = []
        for start, volume in zip(np.asarray(starts_s).tolist(), np.asarray(volume_m3).tolist()):
            if volume < 0:
                raise ValueError(f"negative gas volume {volume} m3")
            cv = self.at(datetime.datetime.fromtimestamp(start, _UTC)).mj_per_m3
            kwh = Decimal(str(volume)) * VOLUME_CORRECTION * cv / MJ_PER_KWH
            energy.append(float(kwh.quantize(Decimal("0.001"), rounding=ROUND_HALF_EVEN)))
        return np.array(energy)
