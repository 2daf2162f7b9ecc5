"""A tariff's calendar resolved onto UTC settlement periods, once per bill period.

Local time appears only here. For each local day of the bill period the calendar
finds the UTC instants of its midnights (so a spring day has 46 half-hours and an
autumn day 50), and for every UTC half-hour in between the rate in force (by the
local wall-clock time, or local standard time with ``standard_time_all_year``), the
block period and the local day. The billing engine then works on these index arrays
alone, for any number of meters.
"""

import datetime
import functools
import zoneinfo
from dataclasses import dataclass

import numpy as np

from .model import SLOTS_PER_DAY, Tariff

__all__ = ["SETTLEMENT_PERIOD_S", "Calendar", "LocalClock", "resolve_calendar"]

#: A settlement period, s: the half-hour every interval is billed on.
SETTLEMENT_PERIOD_S = 1800

_UTC = datetime.timezone.utc


@dataclass(frozen=True)
class LocalClock:
    """The customer's clock: a zone, optionally held at its standard time all year."""

    zone: str
    standard_time_all_year: bool = False

    def offset(self, utc: datetime.datetime) -> datetime.timedelta:
        """Local time minus UTC at an instant."""
        local = utc.astimezone(zoneinfo.ZoneInfo(self.zone))
        offset = local.utcoffset()
        if self.standard_time_all_year:
            offset -= local.dst()
        return offset

    def local(self, utc: datetime.datetime) -> datetime.datetime:
        """The wall-clock (naive) local time of an aware UTC instant."""
        return (utc + self.offset(utc)).replace(tzinfo=None)

    def midnight(self, day: datetime.date) -> datetime.datetime:
        """The UTC instant a local day starts."""
        naive = datetime.datetime.combine(day, datetime.time())
        if not self.standard_time_all_year:
            return naive.replace(tzinfo=zoneinfo.ZoneInfo(self.zone)).astimezone(_UTC)
        # Standard time has no jumps; its offset is the one in force at that midnight.
        guess = naive.replace(tzinfo=_UTC)
        return guess - self.offset(guess)


@dataclass(frozen=True, eq=False)
class Calendar:
    """Every settlement period from the first day's local midnight to the one after the
    last day, with its rate and block period, and where each local day starts (all
    as indices)."""

    tariff: Tariff
    first_day: datetime.date
    last_day: datetime.date
    start_s: int                        #: UTC seconds since the epoch of the first period
    rate: np.ndarray                    #: (periods,) index into ``tariff.rates``
    block_period: np.ndarray            #: (periods,) 0, 1, ... in time order
    day_start: np.ndarray               #: (days + 1,) index of each local day's first period
    day_profile: np.ndarray             #: (days,) index into ``tariff.day_profiles``

    @property
    def periods(self) -> int:
        return len(self.rate)

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    def index(self, starts_s: np.ndarray) -> np.ndarray:
        """Positions of UTC period starts (seconds) in the calendar, refusing any that are
        not on a half-hour boundary or fall outside the bill period."""
        offsets = np.asarray(starts_s, dtype=np.int64) - self.start_s
        off_grid = offsets % SETTLEMENT_PERIOD_S != 0
        outside = (offsets < 0) | (offsets >= self.periods * SETTLEMENT_PERIOD_S)
        for problem, bad in (("is not the start of a half-hour settlement period", off_grid),
                             (f"is outside the bill period {self.first_day} to {self.last_day} "
                              f"(local days, {self.tariff.zone})", outside)):
            if bad.any():
                first = datetime.datetime.fromtimestamp(int(np.asarray(starts_s)[bad][0]), _UTC)
                raise ValueError(f"interval starting {first.isoformat()} {problem}")
        return offsets // SETTLEMENT_PERIOD_S


def _block_period_name(period: str, day: datetime.date) -> str:
    return {"day": day.isoformat(), "month": f"{day.year}-{day.month:02}",
            "quarter": f"{day.year}-Q{(day.month - 1) // 3 + 1}", "year": str(day.year)}[period]


@functools.lru_cache(maxsize=64)
def resolve_calendar(tariff: Tariff, first_day: datetime.date, last_day: datetime.date) -> Calendar:
    """The calendar of ``tariff`` for local days ``first_day`` to ``last_day`` inclusive."""
    if last_day < first_day:
        raise ValueError(f"bill period ends ({last_day}) before it starts ({first_day})")
    clock = LocalClock(tariff.zone, tariff.standard_time_all_year)
    rate_index = {name: index for index, name in enumerate(tariff.rate_names)}
    profile_index = {profile.name: index for index, profile in enumerate(tariff.day_profiles)}
    rates: list[int] = []
    day_starts: list[int] = []
    day_profiles: list[int] = []
    block_periods: list[str] = []
    day = first_day
    midnight = clock.midnight(day)
    for _ in range((last_day - first_day).days + 1):
        next_day = day + datetime.timedelta(days=1)
        next_midnight = clock.midnight(next_day)
        profile = tariff.profile(day)
        slot_rates = profile.slot_rates
        day_starts.append(len(rates))
        day_profiles.append(profile_index[profile.name])
        block_name = _block_period_name(tariff.blocks.period if tariff.blocks else "year", day)
        start = midnight
        while start < next_midnight:
            local = clock.local(start)
            rates.append(rate_index[slot_rates[(local.hour * 60 + local.minute) // 30 % SLOTS_PER_DAY]])
            block_periods.append(block_name)
            start += datetime.timedelta(seconds=SETTLEMENT_PERIOD_S)
        day, midnight = next_day, next_midnight
    names = tuple(dict.fromkeys(block_periods))
    number = {name: index for index, name in enumerate(names)}
    return Calendar(
        tariff=tariff, first_day=first_day, last_day=last_day,
        start_s=int(clock.midnight(first_day).timestamp()),
        rate=np.array(rates, dtype=np.intp),
        block_period=np.array([number[name] for name in block_periods], dtype=np.intp),
        day_start=np.array(day_starts + [len(rates)], dtype=np.intp),
        day_profile=np.array(day_profiles, dtype=np.intp))
