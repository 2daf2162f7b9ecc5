"""Billing properties under Hypothesis, on random tariffs, bill periods and data:

* the engine's bill equals a plain period-by-period model written here from the rules
  (local wall time picks the rate, blocks split intervals at thresholds), line by line;
* a bill equals the sum of its lines, each line quantity x price;
* splitting a bill period in two (carrying the block consumption across) never changes
  the total.

The default run tries a few dozen cases; ``-m extended`` tries many more.
"""

import datetime
import zoneinfo
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from refmeter.soft.tariffs import bill_meters, resolve_calendar, tariff_from_dict

UTC = datetime.timezone.utc
WEEK = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

prices = st.decimals(min_value=0, max_value=60, places=4)


@st.composite
def tariffs(draw) -> dict:
    rates = [f"rate {index}" for index in range(draw(st.integers(1, 4)))]
    thresholds = sorted(draw(st.sets(st.integers(1, 400), max_size=3)))
    tiers = len(thresholds) + 1

    def profile() -> list[dict]:
        cuts = sorted(draw(st.sets(st.integers(1, 47), max_size=5)))
        edges = [0] + cuts + [48]
        return [{"from": f"{a // 2:02}:{a % 2 * 30:02}", "to": f"{b // 2:02}:{b % 2 * 30:02}",
                 "rate": draw(st.sampled_from(rates))} for a, b in zip(edges[:-1], edges[1:])]

    data = {
        "name": "random", "zone": "Europe/London",
        "standing_charge_per_day": str(draw(prices)),
        "rates": {name: {"import": [str(draw(prices)) for _ in range(tiers)], "export": str(draw(prices))}
                  for name in rates},
        "day_profiles": {"weekday": profile(), "weekend": profile(), "holiday": profile()},
        "seasons": [{"name": "all", "week": {day: "weekend" if day in ("sat", "sun") else "weekday"
                                             for day in WEEK}}],
        "special_days": [{"date": day.isoformat(), "profile": "holiday"} for day in draw(
            st.sets(st.dates(datetime.date(2026, 3, 1), datetime.date(2026, 11, 30)), max_size=4))],
    }
    if thresholds:
        data["blocks"] = {"period": draw(st.sampled_from(["day", "month"])), "thresholds_kwh": thresholds}
    return data


#: Bill periods near the 2026 clock changes (29 March, 25 October) and a month end.
bill_periods = st.tuples(st.sampled_from([datetime.date(2026, 3, 26), datetime.date(2026, 10, 22),
                                          datetime.date(2026, 5, 28)]),
                         st.integers(0, 6), st.integers(1, 8))


def meter_data(draw, periods: int) -> tuple[np.ndarray, np.ndarray]:
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    import_wh = np.where(rng.random(periods) < 0.7, rng.integers(0, 6000, periods), 0).astype(np.float64)
    export_wh = np.where(rng.random(periods) < 0.3, rng.integers(0, 3000, periods), 0).astype(np.float64)
    return import_wh, export_wh


def plain_model(data: dict, tariff, first_day, last_day, import_wh, export_wh, opening_wh=0) -> dict:
    """Line amounts (p) by description, period by period, from the tariff's rules."""
    zone = zoneinfo.ZoneInfo(tariff.zone)
    start = datetime.datetime.combine(first_day, datetime.time(), zone).astimezone(UTC)
    end = datetime.datetime.combine(last_day + datetime.timedelta(days=1), datetime.time(), zone).astimezone(UTC)
    thresholds = [Decimal(t) * 1000 for t in tariff.blocks.thresholds_kwh] if tariff.blocks else []
    lines: dict[str, Decimal] = {}
    block, used = None, Decimal(opening_wh)
    prices_of = {rate.name: rate for rate in tariff.rates}
    for index in range(int((end - start).total_seconds()) // 1800):
        local = (start + datetime.timedelta(minutes=30 * index)).astimezone(zone)
        rate = tariff.profile(local.date()).slot_rates[local.hour * 2 + local.minute // 30]
        period_key = (local.date() if tariff.blocks and tariff.blocks.period == "day"
                      else (local.year, local.month))
        if tariff.blocks and period_key != block:
            if block is not None:
                used = Decimal(0)
            block = period_key
        energy = Decimal(int(import_wh[index]))
        bounds = [Decimal(0)] + thresholds + [None]
        for tier in range(len(bounds) - 1):
            low, high = bounds[tier], bounds[tier + 1]
            part = max(Decimal(0), min(used + energy, high if high is not None else used + energy) - max(used, low))
            if part:
                key = f"import, {rate}" + (f", block {tier + 1}" if tariff.blocks else "")
                lines[key] = lines.get(key, Decimal(0)) + part * prices_of[rate].import_prices[tier] / 1000
        used += energy
        if export_wh[index]:
            key = f"export, {rate}"
            lines[key] = lines.get(key, Decimal(0)) - Decimal(int(export_wh[index])) * prices_of[rate].export_price / 1000
    lines["standing charge"] = ((last_day - first_day).days + 1) * tariff.standing_charge_per_day
    return {key: value for key, value in lines.items() if value}


def check_against_plain_model(data, period, draw):
    tariff = tariff_from_dict(data)
    first_day = period[0] + datetime.timedelta(days=period[1])
    last_day = first_day + datetime.timedelta(days=period[2] - 1)
    calendar = resolve_calendar(tariff, first_day, last_day)
    import_wh, export_wh = meter_data(draw, calendar.periods)
    result = bill_meters(tariff, import_wh[None], export_wh[None], first_day=first_day, last_day=last_day).bill(0)
    ours = {line.description: line.amount for line in result.lines if line.amount}
    assert ours == plain_model(data, tariff, first_day, last_day, import_wh, export_wh)
    # A bill is the sum of its lines, and each line is its quantity at its price.
    assert result.total == sum(line.amount for line in result.lines)
    for line in result.lines:
        assert line.amount == (-1 if line.kind == "export" else 1) * line.quantity * line.price


@settings(max_examples=100, deadline=None)
@given(data=tariffs(), period=bill_periods, draw=st.data())
def test_engine_equals_the_plain_model_and_lines_add_up(data, period, draw):
    check_against_plain_model(data, period, draw.draw)


@pytest.mark.extended
@settings(max_examples=1500, deadline=None)
@given(data=tariffs(), period=bill_periods, draw=st.data())
def test_engine_equals_the_plain_model_many_cases(data, period, draw):
    check_against_plain_model(data, period, draw.draw)


def check_split(data, period, split, draw):
    tariff = tariff_from_dict(data)
    first_day = period[0] + datetime.timedelta(days=period[1])
    last_day = first_day + datetime.timedelta(days=period[2])       # at least two days
    calendar = resolve_calendar(tariff, first_day, last_day)
    import_wh, export_wh = meter_data(draw, calendar.periods)
    whole = bill_meters(tariff, import_wh[None], export_wh[None], first_day=first_day, last_day=last_day)
    middle = first_day + datetime.timedelta(days=split % period[2] + 1)
    head = resolve_calendar(tariff, first_day, middle - datetime.timedelta(days=1)).periods
    first = bill_meters(tariff, import_wh[None, :head], export_wh[None, :head], first_day=first_day,
                        last_day=middle - datetime.timedelta(days=1)).bill(0)
    # The second bill opens with the block consumption the first closed with, unless
    # a new block period starts with it.
    same_block = calendar.block_period[head - 1] == calendar.block_period[head]
    second = bill_meters(tariff, import_wh[None, head:], export_wh[None, head:], first_day=middle,
                         last_day=last_day,
                         opening_block_kwh=float(first.closing_block_kwh) if same_block else 0).bill(0)
    assert first.total + second.total == whole.bill(0).total


@settings(max_examples=100, deadline=None)
@given(data=tariffs(), period=bill_periods, split=st.integers(0, 100), draw=st.data())
def test_splitting_a_period_in_two_never_changes_the_total(data, period, split, draw):
    check_split(data, period, split, draw.draw)


@pytest.mark.extended
@settings(max_examples=1500, deadline=None)
@given(data=tariffs(), period=bill_periods, split=st.integers(0, 100), draw=st.data())
def test_splitting_never_changes_the_total_many_cases(data, period, split, draw):
    check_split(data, period, split, draw.draw)
