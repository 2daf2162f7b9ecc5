"""The vectorised core of billing: energy per rate and block tier for many meters.

Work goes by local day, because every boundary a tariff has (day profiles, block
periods, standing charges) falls on a local midnight:

1. Each day's energy per rate is a matrix product. Runs of ordinary days (48
   periods whose rates follow their day profile) are viewed, without copying, as
   (meters, days, 48) and multiplied by one (48, profiles x rates) one-hot matrix of
   every day profile, of which a mask keeps each day's own; the clock-change days
   (46 or 50 periods) get a small product each.
2. Block tiers follow cumulative consumption per block period, which needs only
   the daily totals. For each threshold, a day that starts above it adds its energy
   per rate; only a day during which it is crossed is looked at period by period,
   and an interval that crosses it is split at the threshold.

Whole Wh (the meter's resolution) are summed exactly: each day's sums in the input's
precision (float32 holds every whole number to 16.7 MWh a day), everything after in
float64.
"""

import functools
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .calendar import Calendar
from .model import SLOTS_PER_DAY

__all__ = ["energy_by_rate_and_tier", "daily_by_rate", "total_by_rate"]


@dataclass(frozen=True, eq=False)
class _DayPlan:
    runs: tuple[tuple[int, int], ...]       #: (first day, end day) of ordinary days in a row
    odd_days: tuple[int, ...]               #: clock-change (or otherwise irregular) days
    ordinary: np.ndarray                    #: (days,) bool: not an odd day
    patterns: np.ndarray                    #: (48, profiles * rates) one-hot, float32
    own: np.ndarray                         #: (days, profiles * rates): 1 under the day's profile
    fold: np.ndarray                        #: (profiles * rates, rates): adds the profiles up
    own_by_rate: np.ndarray                 #: (days * profiles * rates, rates): own x fold
    rate_one_hot: np.ndarray                #: (periods, rates) one-hot, float32, for odd days


@functools.lru_cache(maxsize=64)
def _plan(calendar: Calendar) -> _DayPlan:
    """How :func:`_every_profile` walks a calendar: made once per calendar, then reused
    for every batch of meters."""
    tariff = calendar.tariff
    rates, profiles = len(tariff.rates), len(tariff.day_profiles)
    rate_index = {name: index for index, name in enumerate(tariff.rate_names)}
    profile_rates = np.array([[rate_index[name] for name in profile.slot_rates]
                              for profile in tariff.day_profiles], dtype=np.intp)
    patterns = np.zeros((SLOTS_PER_DAY, profiles * rates), dtype=np.float32)
    for profile, slot_rates in enumerate(profile_rates):
        patterns[np.arange(SLOTS_PER_DAY), profile * rates + slot_rates] = 1
    own = np.zeros((calendar.days, profiles, rates))
    own[np.arange(calendar.days), calendar.day_profile] = 1
    # An ordinary day has 48 periods whose rates are its profile's, in order.
    ordinary = [calendar.day_start[day + 1] - calendar.day_start[day] == SLOTS_PER_DAY
                and np.array_equal(calendar.rate[calendar.day_start[day]:calendar.day_start[day + 1]],
                                   profile_rates[calendar.day_profile[day]])
                for day in range(calendar.days)]
    runs, odd_days, day = [], [], 0
    while day < calendar.days:
        end = day + 1
        if not ordinary[day]:
            odd_days.append(day)
        else:
            while end < calendar.days and ordinary[end]:
                end += 1
            runs.append((day, end))
        day = end
    rate_one_hot = np.zeros((calendar.periods, rates), dtype=np.float32)
    rate_one_hot[np.arange(calendar.periods), calendar.rate] = 1
    fold = np.tile(np.eye(rates), (profiles, 1))
    own = own.reshape(calendar.days, -1)
    return _DayPlan(tuple(runs), tuple(odd_days), np.array(ordinary, dtype=bool), patterns, own,
                    fold, (own[:, :, None] * fold).reshape(-1, rates), rate_one_hot)


def _every_profile(calendar: Calendar, energy: np.ndarray) -> np.ndarray:
    """(meters, days, profiles * rates), in the input's precision: each day's energy per
    rate as every day profile would split it (a clock-change day: its own split only).
    A day's sums of whole Wh are exact in float32 up to 16.7 MWh."""
    plan = _plan(calendar)
    meters, rates = energy.shape[0], len(calendar.tariff.rates)
    patterns = plan.patterns.astype(energy.dtype, copy=False)
    every_profile = np.empty((meters, calendar.days, patterns.shape[1]), dtype=energy.dtype)
    for first, end in plan.runs:
        start = calendar.day_start[first]
        days = end - first
        view = energy[:, start:start + days * SLOTS_PER_DAY].reshape(meters, days, SLOTS_PER_DAY)
        np.matmul(view, patterns, out=every_profile[:, first:end])
    for day in plan.odd_days:
        start, end = calendar.day_start[day], calendar.day_start[day + 1]
        profile = calendar.day_profile[day]
        every_profile[:, day] = 0
        every_profile[:, day, profile * rates:(profile + 1) * rates] = \
            energy[:, start:end] @ plan.rate_one_hot[start:end].astype(energy.dtype, copy=False)
    return every_profile


def daily_by_rate(calendar: Calendar, energy: np.ndarray) -> np.ndarray:
    """(meters, days, rates), in the input's precision: each local day's energy per rate
    (each day's own profile's split; the others are masked out and the profiles added)."""
    plan = _plan(calendar)
    every_profile = _every_profile(calendar, energy)
    every_profile *= plan.own.astype(energy.dtype, copy=False)
    return every_profile @ plan.fold.astype(energy.dtype, copy=False)


def total_by_rate(calendar: Calendar, energy: np.ndarray) -> np.ndarray:
    """(meters, rates) float64: energy per rate over the whole calendar."""
    plan = _plan(calendar)
    every_profile = _every_profile(calendar, energy)
    return every_profile.reshape(len(energy), -1).astype(np.float64) @ plan.own_by_rate


def energy_by_rate_and_tier(calendar: Calendar, import_energy: np.ndarray,
                            opening: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Import per rate and block tier, (meters, rates, tiers), and each meter's
    consumption in the block period current at the end, (meters,); both in the units
    of ``import_energy`` (meters, periods). ``opening`` is what each meter had already
    used in the block period current at the start.

    Each threshold is taken on its own: the energy above it is the days that start
    above it, plus the part above it of the days during which it is crossed. Tier
    ``k`` is then what lies above threshold ``k`` and not above threshold ``k + 1``.
    """
    tariff = calendar.tariff
    meters = import_energy.shape[0]
    if tariff.blocks is None:
        return total_by_rate(calendar, import_energy)[:, :, None], np.zeros(meters)
    daily = daily_by_rate(calendar, import_energy).astype(np.float64)
    day_total = daily @ np.ones(daily.shape[2])
    day_period = calendar.block_period[calendar.day_start[:-1]]
    cumulative = np.cumsum(day_total, axis=1)
    period_starts = np.flatnonzero(np.diff(day_period, prepend=-1))
    base = np.where(period_starts > 0, cumulative[:, np.maximum(period_starts - 1, 0)], 0.0)
    base[:, 0] -= opening
    after = cumulative - base[:, day_period]       # block-period consumption at each day's end
    before = after - day_total
    above = [np.ones(daily.shape[1]) @ daily]
    for threshold in tariff.blocks.thresholds_kwh:
        above.append(_energy_above(calendar, import_energy, daily, before, after, float(threshold) * 1000))
    above.append(np.zeros_like(above[0]))
    return np.stack([high - low for high, low in zip(above[:-1], above[1:])], axis=2), after[:, -1]


def _energy_above(calendar: Calendar, energy: np.ndarray, daily: np.ndarray, before: np.ndarray,
                  after: np.ndarray, threshold: float) -> np.ndarray:
    """(meters, rates) float64: import above ``threshold`` (Wh) of block-period consumption."""
    result = np.matmul((before >= threshold).astype(np.float64)[:, None, :], daily)[:, 0]
    meter, day = np.nonzero((before < threshold) & (after > threshold))
    if not len(meter):
        return result
    plan = _plan(calendar)
    rates = daily.shape[2]
    below = np.empty((len(meter), rates))
    ordinary = plan.ordinary[day]
    if ordinary.any():
        # Ordinary days: their 48 periods as blocks of a sliding view, and the rates by
        # one product with every day profile's pattern, of which each day keeps its own.
        days = sliding_window_view(energy, SLOTS_PER_DAY, axis=1)
        values = days[meter[ordinary], calendar.day_start[day[ordinary]]].astype(np.float64)
        every_profile = _below(values, before[meter[ordinary], day[ordinary]], threshold) \
            @ plan.patterns.astype(np.float64)
        below[ordinary] = every_profile.reshape(len(values), -1, rates)[
            np.arange(len(values)), calendar.day_profile[day[ordinary]]]
    for odd_day in np.unique(day[~ordinary]):  # clock-change days: at most two a year
        events = np.flatnonzero(day == odd_day)
        start, end = calendar.day_start[odd_day], calendar.day_start[odd_day + 1]
        values = energy[meter[events], start:end].astype(np.float64)
        below[events] = _below(values, before[meter[events], odd_day], threshold) @ plan.rate_one_hot[start:end]
    # Crossings come in meter order: add up each meter's run of them.
    first = np.flatnonzero(np.diff(meter, prepend=-1))
    result[meter[first]] += np.add.reduceat(daily[meter, day] - below, first, axis=0)
    return result


def _below(values: np.ndarray, before: np.ndarray, threshold: float) -> np.ndarray:
    """(days, periods): each period's energy below ``threshold``, given the block period's
    consumption ``before`` each day."""
    running = np.cumsum(values, axis=1)
    running -= values
    running += before[:, None]
    np.subtract(threshold, running, out=running)
    np.maximum(running, 0, out=running)
    return np.minimum(running, values, out=running)
