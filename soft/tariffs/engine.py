"""The vectorised core of billing: energy per rate and block tier for many meters.

Work goes by local day, because every boundary a tariff has (day profiles, block
periods, standing charges) falls on a local midnight:

1. Each day's energy per rate is a matrix product. Runs of ordinary days (48
   periods whose rates follow their day profile) are viewed, without copying, as
   (meters, days, 48) and multiplied by one (48, profiles x rates) one-hot matrix of
   every day profile, of which a mask keeps each day's own; the clock-change days
   (46 or 50 periods) get a small product each.
2. Block tiers follow cumulative consumption per block period, which needs only
   the daily totals. A day that lies wholly in one tier adds its energy per rate to
   that tier; only a day during which a threshold is crossed is looked at period by
   period, and an interval that crosses it is split at the threshold.

Whole Wh (the meter's resolution) are summed exactly: each day's sums in the input's
precision (float32 holds every whole number to 16.7 MWh a day), everything after in
float64.
"""

import functools
from dataclasses import dataclass

import numpy as np

from .calendar import Calendar
from .model import SLOTS_PER_DAY

__all__ = ["energy_by_rate_and_tier", "daily_by_rate"]


@dataclass(frozen=True, eq=False)
class _DayPlan:
    runs: tuple[tuple[int, int], ...]       #: (first day, end day) of ordinary days in a row
    odd_days: tuple[int, ...]               #: clock-change (or otherwise irregular) days
    patterns: np.ndarray                    #: (48, profiles * rates) one-hot, float32
    own: np.ndarray                         #: (days, profiles * rates): 1 under the day's profile
    fold: np.ndarray                        #: (profiles * rates, rates): adds the profiles up
    rate_one_hot: np.ndarray                #: (periods, rates) one-hot, float32, for odd days


@functools.lru_cache(maxsize=64)
def _plan(calendar: Calendar) -> _DayPlan:
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
    return _DayPlan(tuple(runs), tuple(odd_days), patterns, own.reshape(calendar.days, -1), fold,
                    rate_one_hot)


def daily_by_rate(calendar: Calendar, energy: np.ndarray) -> np.ndarray:
    """(meters, days, rates) float64: each local day's energy per rate.

    One product per run of ordinary days gives each day's split under every day
    profile; a mask keeps the day's own profile's."""
    plan = _plan(calendar)
    meters, rates = energy.shape[0], len(calendar.tariff.rates)
    patterns = plan.patterns.astype(energy.dtype, copy=False)
    every_profile = np.zeros((meters, calendar.days, patterns.shape[1]))
    for first, end in plan.runs:
        start = calendar.day_start[first]
        days = end - first
        view = energy[:, start:start + days * SLOTS_PER_DAY].reshape(meters, days, SLOTS_PER_DAY)
        every_profile[:, first:end] = np.matmul(view, patterns)
    for day in plan.odd_days:
        start, end = calendar.day_start[day], calendar.day_start[day + 1]
        profile = calendar.day_profile[day]
        every_profile[:, day, profile * rates:(profile + 1) * rates] = \
            energy[:, start:end] @ plan.rate_one_hot[start:end].astype(energy.dtype, copy=False)
    every_profile *= plan.own
    return every_profile @ plan.fold


def energy_by_rate_and_tier(calendar: Calendar, import_energy: np.ndarray,
                            opening: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Import per rate and block tier, (meters, rates, tiers), and each meter's
    consumption in the block period current at the end, (meters,); both in the units
    of ``import_energy`` (meters, periods). ``opening`` is what each meter had already
    used in the block period current at the start."""
    tariff = calendar.tariff
    daily = daily_by_rate(calendar, import_energy)
    meters = import_energy.shape[0]
    if tariff.blocks is None:
        return daily.sum(axis=1)[:, :, None], np.zeros(meters)
    thresholds = np.array([float(t) * 1000 for t in tariff.blocks.thresholds_kwh])  # Wh
    tiers = len(thresholds) + 1
    day_total = daily.sum(axis=2)
    day_period = calendar.block_period[calendar.day_start[:-1]]
    cumulative = np.cumsum(day_total, axis=1)
    period_starts = np.flatnonzero(np.diff(day_period, prepend=-1))
    base = np.where(period_starts > 0, cumulative[:, np.maximum(period_starts - 1, 0)], 0.0)
    base[:, 0] -= opening
    after = cumulative - base[:, day_period]
    before = after - day_total
    # A day's energy is the span (before, after]: the tier of its first and last Wh.
    first_tier = np.searchsorted(thresholds, before, side="right")
    last_tier = np.searchsorted(thresholds, after, side="left")
    whole = (first_tier == last_tier) | (day_total == 0)
    # Whole days add their energy per rate to their tier: (rates x days) @ (days x tiers).
    in_tier = (first_tier[:, :, None] == np.arange(tiers)) & whole[:, :, None]
    result = np.matmul(daily.transpose(0, 2, 1), in_tier.astype(np.float64))
    crossing_meter, crossing_day = np.nonzero(~whole)
    if len(crossing_meter):
        result += _split_crossing_days(calendar, import_energy, crossing_meter, crossing_day,
                                       before[crossing_meter, crossing_day], thresholds, meters)
    return result, after[:, -1]


def _split_crossing_days(calendar: Calendar, energy: np.ndarray, meter: np.ndarray, day: np.ndarray,
                         before: np.ndarray, thresholds: np.ndarray, meters: int) -> np.ndarray:
    """(meters, rates, tiers): the energy of the days during which a threshold is
    crossed, period by period."""
    start = calendar.day_start[day]
    length = calendar.day_start[day + 1] - start
    offsets = np.arange(length.max())
    inside = offsets < length[:, None]
    index = np.where(inside, start[:, None] + offsets, 0)
    values = np.where(inside, energy[meter[:, None], index], 0).astype(np.float64)
    period_after = before[:, None] + np.cumsum(values, axis=1)
    period_before = period_after - values
    bounds = np.concatenate([[0.0], thresholds, [np.inf]])
    rates, tiers = len(calendar.tariff.rates), len(bounds) - 1
    cell = (meter[:, None] * rates + calendar.rate[index]) * tiers
    result = np.zeros(meters * rates * tiers)
    for tier, (low, high) in enumerate(zip(bounds[:-1], bounds[1:])):
        in_tier = np.clip(period_after, low, high) - np.clip(period_before, low, high)
        result += np.bincount((cell + tier).ravel(), weights=in_tier.ravel(), minlength=result.size)
    return result.reshape(meters, rates, tiers)
