"""The vectorised core of billing: energy per rate and block tier for many meters.

Work goes by local day, because every boundary a tariff has (day profiles, block
periods, standing charges) falls on a local midnight:

1. Each day's energy per rate is a matrix product. Runs of ordinary days (48
   periods whose rates follow their day profile) are viewed, without copying, as
   (meters, days, 48) and multiplied by one (48, profiles x rates) one-hot matrix of
   every day profile, of which a mask keeps each day's own; the clock-change days
   (46 or 50 periods) get a small product each.
2. Block tiers follow consumption since the start of the block period: a running
   total, which numba compiles as a loop over each meter's days. A day that lies
   wholly in one tier adds its energy per rate to it; only a day during which a
   threshold is crossed is walked period by period, and an interval that crosses
   it is split at the threshold.

Whole Wh (the meter's resolution) are summed exactly: each day's sums in the input's
precision (float32 holds every whole number to 16.7 MWh a day), everything after in
float64.
"""

import functools
from dataclasses import dataclass

import numpy as np

from .calendar import Calendar
from .model import SLOTS_PER_DAY

__all__ = ["energy_by_rate_and_tier", "daily_by_rate", "total_by_rate"]


@dataclass(frozen=True, eq=False)
class _DayPlan:
    runs: tuple[tuple[int, int], ...]       #: (first day, end day) of ordinary days in a row
    odd_days: tuple[int, ...]               #: clock-change (or otherwise irregular) days
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
    return _DayPlan(tuple(runs), tuple(odd_days), patterns, own,
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
    used in the block period current at the start."""
    tariff = calendar.tariff
    meters = import_energy.shape[0]
    if tariff.blocks is None:
        return total_by_rate(calendar, import_energy)[:, :, None], np.zeros(meters)
    thresholds = np.array([float(t) * 1000 for t in tariff.blocks.thresholds_kwh])  # Wh
    result = np.zeros((meters, len(tariff.rates), len(thresholds) + 1))
    closing = np.empty(meters)
    _compiled_tiers()(import_energy, daily_by_rate(calendar, import_energy), calendar.day_start,
           calendar.rate, calendar.block_period[calendar.day_start[:-1]],
           np.ascontiguousarray(opening, dtype=np.float64), thresholds, result, closing)
    return result, closing


@functools.cache
def _compiled_tiers():
    """:func:`_tiers` compiled by numba, on first use: the CLI starts without numba."""
    import numba
    return numba.njit(cache=True)(_tiers)


def _tiers(energy, daily, day_start, rate, day_period, opening, thresholds, result, closing):
    """Block tiers in time order, meter by meter (a running total cannot be vectorised
    over time): a day wholly within one tier adds its energy per rate to it; a day
    during which a threshold is crossed is walked period by period, and the period
    that crosses it is split at the threshold. Sums in float64."""
    last_tier = len(thresholds)
    for meter in range(energy.shape[0]):
        used = opening[meter]
        for day in range(daily.shape[1]):
            if day > 0 and day_period[day] != day_period[day - 1]:
                used = 0.0
            total = 0.0
            for index in range(daily.shape[2]):
                total += daily[meter, day, index]
            tier = 0  # of the energy just past `used`: how many thresholds it has reached
            while tier < last_tier and thresholds[tier] <= used:
                tier += 1
            if tier == last_tier or used + total <= thresholds[tier]:
                for index in range(daily.shape[2]):
                    result[meter, index, tier] += daily[meter, day, index]
                used += total
                continue
            for period in range(day_start[day], day_start[day + 1]):
                remaining = np.float64(energy[meter, period])
                while remaining > 0:
                    room = thresholds[tier] - used if tier < last_tier else remaining
                    taken = min(remaining, room)
                    result[meter, rate[period], tier] += taken
                    used += taken
                    remaining -= taken
                    if remaining > 0 or (tier < last_tier and used >= thresholds[tier]):
                        tier += 1
        closing[meter] = used
