"""Golden bills worked by hand, and the tariff model's refusals.

Every expected figure below was worked out on paper from the tariff and the data, not
taken from the engine: the comments show the working.
"""

import copy
import datetime
import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from refmeter.soft.profile import ProfileRecord
from refmeter.soft.tariffs import (bill, bill_meters, intervals_from_profile, load_tariff,
                                   resolve_calendar, tariff_from_dict)
from refmeter.soft.tariffs.gas import CalorificValue, CalorificValueHistory

DATA = Path(__file__).parent / "tariffs_data"
UTC = datetime.timezone.utc
ECONOMY7 = json.loads((DATA / "economy7.json").read_text())


def utc(*args) -> datetime.datetime:
    return datetime.datetime(*args, tzinfo=UTC)


def amounts(result) -> dict[str, Decimal]:
    return {line.description: line.amount for line in result.lines if line.amount}


def one_kwh_every_period(tariff, day):
    calendar = resolve_calendar(tariff, day, day)
    return bill_meters(tariff, np.full((1, calendar.periods), 1000.0), first_day=day, last_day=day).bill(0)


# --- Clock changes, leap day, standard time ------------------------------------------------

def test_spring_clock_change_day_has_46_periods_and_bills_the_missing_hour_nowhere():
    # 2026-03-29: clocks go from 01:00 GMT to 02:00 BST. Night 00:00-07:00 local is
    # 00:00-01:00 (2 periods) + 02:00-07:00 (10) = 12 periods; day 07:00-24:00 = 34.
    # 12 x 10 p + 34 x 30 p + 50 p standing = 1190 p.
    tariff = tariff_from_dict(ECONOMY7)
    result = one_kwh_every_period(tariff, datetime.date(2026, 3, 29))
    assert resolve_calendar(tariff, datetime.date(2026, 3, 29), datetime.date(2026, 3, 29)).periods == 46
    assert amounts(result) == {"import, night": 120, "import, day": 1020, "standing charge": 50}
    assert result.total == 1190


def test_autumn_clock_change_day_has_50_periods_and_bills_the_repeated_hour_twice():
    # 2026-10-25: clocks go from 02:00 BST back to 01:00 GMT. Night: 00:00-01:00 BST (2),
    # 01:00-02:00 BST (2), 01:00-02:00 GMT again (2), 02:00-07:00 GMT (10) = 16 periods.
    # 16 x 10 + 34 x 30 + 50 = 1230 p.
    tariff = tariff_from_dict(ECONOMY7)
    result = one_kwh_every_period(tariff, datetime.date(2026, 10, 25))
    assert amounts(result) == {"import, night": 160, "import, day": 1020, "standing charge": 50}
    assert result.total == 1230


def test_autumn_day_starts_at_2300_utc_the_day_before():
    # Local midnight of 2026-10-25 is 00:00 BST = 23:00 UTC on the 24th: an interval
    # starting then is the new day's first night period.
    tariff = tariff_from_dict(ECONOMY7)
    result = bill(tariff, [utc(2026, 10, 24, 23, 0)], [2.0])
    assert (result.first_day, result.last_day) == (datetime.date(2026, 10, 25),) * 2
    assert amounts(result) == {"import, night": 20, "standing charge": 50}


def test_leap_day_special_day_and_a_29_day_february():
    # 2028-02-29 is listed as a holiday: all 48 periods at 5 p = 240 p + 50 p.
    tariff = tariff_from_dict(ECONOMY7)
    assert one_kwh_every_period(tariff, datetime.date(2028, 2, 29)).total == 290
    # The whole of February 2028 with no energy: 29 days x 50 p.
    february = bill(tariff, [], [], first_day=datetime.date(2028, 2, 1), last_day=datetime.date(2028, 2, 29))
    assert amounts(february) == {"standing charge": 29 * 50}


def test_standard_time_all_year_keeps_the_night_window_on_gmt():
    # 06:30-07:00 UTC on 2026-07-01 is 07:30 BST (day, 30 p) but 06:30 GMT (night, 10 p).
    start = [utc(2026, 7, 1, 6, 30)]
    assert amounts(bill(tariff_from_dict(ECONOMY7), start, [1.0]))["import, day"] == 30
    standard = tariff_from_dict({**ECONOMY7, "standard_time_all_year": True})
    assert amounts(bill(standard, start, [1.0]))["import, night"] == 10


def test_export_is_a_credit_at_the_rate_in_force():
    # 2 kWh exported at noon (day, 15 p) and 1 kWh imported: 30 - 30 + 50 = 50 p.
    result = bill(tariff_from_dict(ECONOMY7), [utc(2026, 1, 5, 12)], [1.0], [2.0])
    assert amounts(result) == {"import, day": 30, "export, day": -30, "standing charge": 50}
    assert result.total == 50


# --- Blocks ------------------------------------------------------------------------------

TOU_BLOCK = {**ECONOMY7, "name": "TOU with blocks", "standing_charge_per_day": 0,
             "blocks": {"period": "month", "thresholds_kwh": [100]},
             "rates": {"night": {"import": [10, 15]}, "day": {"import": [30, 40]},
                       "holiday": {"import": [5, 5]}}}


def test_block_threshold_crossed_mid_interval_splits_the_interval():
    # 2026-01-05 (GMT): 60 kWh at 01:00 and 60 kWh at 01:30 (night), 10 kWh at 12:00 (day).
    # The second interval crosses 100 kWh after 40 of its 60 kWh:
    # night block 1: 100 kWh x 10 = 1000 p; night block 2: 20 x 15 = 300 p;
    # day block 2: 10 x 40 = 400 p. Total 1700 p.
    tariff = tariff_from_dict(TOU_BLOCK)
    starts = [utc(2026, 1, 5, 1, 0), utc(2026, 1, 5, 1, 30), utc(2026, 1, 5, 12, 0)]
    result = bill(tariff, starts, [60.0, 60.0, 10.0])
    assert amounts(result) == {"import, night, block 1": 1000, "import, night, block 2": 300,
                               "import, day, block 2": 400}
    assert result.closing_block_kwh == 130
    # The same month already 50 kWh in: night block 1 takes only 50 kWh.
    carried = bill(tariff, starts, [60.0, 60.0, 10.0], opening_block_kwh=50)
    assert amounts(carried) == {"import, night, block 1": 500, "import, night, block 2": 1050,
                                "import, day, block 2": 400}


def test_blocks_start_again_each_local_month():
    # 60 kWh on 31 January and 60 kWh on 1 February: each month stays under 100 kWh.
    tariff = tariff_from_dict(TOU_BLOCK)
    result = bill(tariff, [utc(2026, 1, 31, 12), utc(2026, 2, 1, 12)], [60.0, 60.0])
    assert amounts(result) == {"import, day, block 1": 3600}
    assert result.closing_block_kwh == 60


def test_block_month_starts_at_local_midnight_in_summer():
    # 23:30 UTC on 31 July is 00:30 BST on 1 August: a new block month.
    tariff = tariff_from_dict(TOU_BLOCK)
    result = bill(tariff, [utc(2026, 7, 31, 12), utc(2026, 7, 31, 23, 30)], [90.0, 20.0])
    assert amounts(result) == {"import, day, block 1": 2700, "import, night, block 1": 200}


# --- Gas -----------------------------------------------------------------------------------

def test_gas_with_two_calorific_values_in_a_month():
    # 10 m3 on 10 January at CV 39.5: 10 x 1.02264 x 39.5 / 3.6 = 112.20633 -> 112.206 kWh.
    # 10 m3 on 20 January at CV 40.1 (from the 15th): 10 x 1.02264 x 40.1 / 3.6
    # = 113.91073 -> 113.911 kWh. At 6 p/kWh: 226.117 x 6 = 1356.702 p; standing
    # 31 days x 30 p = 930 p. Total 2286.702 p, payable 2287 p.
    history = CalorificValueHistory()
    received = utc(2026, 1, 1)
    history.add(CalorificValue(utc(2025, 12, 1), Decimal("39.5"), received, "test"))
    history.add(CalorificValue(utc(2026, 1, 15), Decimal("40.1"), received, "test"))
    starts = [int(utc(2026, 1, 10, 12).timestamp()), int(utc(2026, 1, 20, 12).timestamp())]
    kwh = history.kwh(starts, [10.0, 10.0])
    assert kwh.tolist() == [112.206, 113.911]
    tariff = tariff_from_dict({"name": "gas", "zone": "Europe/London", "standing_charge_per_day": 30,
                               "rates": {"gas": {"import": 6}},
                               "day_profiles": {"default": [{"from": "00:00", "to": "00:00", "rate": "gas"}]}})
    result = bill(tariff, starts, kwh, first_day=datetime.date(2026, 1, 1), last_day=datetime.date(2026, 1, 31))
    assert result.total == Decimal("2286.702")
    assert result.payable == 2287
    assert [value.mj_per_m3 for value in history.values] == [Decimal("39.5"), Decimal("40.1")]


def test_implausible_calorific_value_is_refused_and_not_recorded():
    history = CalorificValueHistory()
    with pytest.raises(ValueError, match=r"calorific value 11.0 MJ/m3 is outside the plausible band 35 to 45"):
        history.add(CalorificValue(utc(2026, 1, 1), Decimal("11.0"), utc(2026, 1, 1), "test"))
    assert history.values == ()
    history.add(CalorificValue(utc(2026, 1, 2), Decimal("39.0"), utc(2026, 1, 1), "test"))
    with pytest.raises(ValueError, match="is not after the latest one"):
        history.add(CalorificValue(utc(2026, 1, 1), Decimal("39.0"), utc(2026, 1, 1), "test"))
    with pytest.raises(ValueError, match="no calorific value is in force"):
        history.kwh([int(utc(2025, 1, 1).timestamp())], [1.0])


# --- Interval data in -----------------------------------------------------------------------

def test_load_profile_records_bill_in_the_period_they_end_in():
    # Two whole half-hours and a partial record that ended 10 minutes into the third.
    def record(number, end, wh, **flags):
        return ProfileRecord(number, None, end, wh, 0, flags.get("power_up", False), False, False)
    records = [record(0, utc(2026, 1, 5, 12, 30), 1000), record(1, utc(2026, 1, 5, 13), 500),
               record(2, utc(2026, 1, 5, 13, 10), 250, power_up=True)]
    starts, imported, exported = intervals_from_profile(records)
    assert starts.tolist() == [int(utc(2026, 1, 5, h, m).timestamp()) for h, m in ((12, 0), (12, 30), (13, 0))]
    assert imported.tolist() == [1.0, 0.5, 0.25]
    assert exported.tolist() == [0, 0, 0]
    assert amounts(bill(tariff_from_dict(ECONOMY7), starts, imported, exported))["import, day"] == 52.5


def test_tariff_file_toml_reads_the_same_as_json(tmp_path):
    toml = tmp_path / "economy7.toml"
    toml.write_text(
        'name = "Economy 7 (golden)"\nversion = 1\nstanding_charge_per_day = "50"\n'
        'special_days = [{date = "2028-02-29", profile = "holiday"}]\n'
        '[rates.night]\nimport = "10"\nexport = "15"\n[rates.day]\nimport = "30"\nexport = "15"\n'
        '[rates.holiday]\nimport = "5"\n'
        '[day_profiles]\nnormal = [{from = "00:00", to = "07:00", rate = "night"}, '
        '{from = "07:00", to = "24:00", rate = "day"}]\n'
        'holiday = [{from = "00:00", to = "00:00", rate = "holiday"}]\n'
        '[[seasons]]\nname = "all year"\n[seasons.week]\nmon = "normal"\ntue = "normal"\n'
        'wed = "normal"\nthu = "normal"\nfri = "normal"\nsat = "normal"\nsun = "normal"\n')
    assert load_tariff(toml) == load_tariff(DATA / "economy7.json")


# --- Refusals ------------------------------------------------------------------------------

def _with(change) -> dict:
    data = copy.deepcopy(ECONOMY7)
    change(data)
    return data


@pytest.mark.parametrize("change, message", [
    (lambda d: d["day_profiles"]["normal"][1].update({"from": "07:30"}),
     r"day profile 'normal' has a gap: no rate from 07:00 to 07:30"),
    (lambda d: d["day_profiles"]["normal"][0].update({"to": "08:00"}),
     r"day profile 'normal' has an overlap: rates \['night', 'day'\] both from 07:00 to 08:00"),
    (lambda d: d["rates"]["day"].update({"import": "-1"}), r"rate 'day' import: negative price -1"),
    (lambda d: d["rates"]["day"].update({"export": "-0.5"}), r"rate 'day' export: negative price -0.5"),
    (lambda d: d.update({"standing_charge_per_day": -3}), r"standing charge: negative price -3"),
    (lambda d: d["rates"]["day"].update({"import": "1.23456"}), r"more than 4 decimal places"),
    (lambda d: d["day_profiles"]["normal"][1].update({"rate": "peak"}),
     r"day profile 'normal' uses unknown rate 'peak'"),
    (lambda d: d["day_profiles"]["normal"][1].update({"to": "23:15"}), r"not a half-hour boundary"),
    (lambda d: d.update({"seasons": [{"name": "summer", "from": "04-01", "to": "10-01",
                                      "week": d["seasons"][0]["week"]}]}),
     r"no season covers 01-01"),
    (lambda d: d["seasons"].append({"name": "winter", "from": "11-01", "to": "03-01",
                                    "week": d["seasons"][0]["week"]}),
     r"seasons \['all year', 'winter'\] overlap on 01-01"),
    (lambda d: d["seasons"][0]["week"].pop("sun"), r"season 'all year' has no day profile for sun"),
    (lambda d: d["special_days"].append({"date": "2028-02-29", "profile": "normal"}),
     r"special day 2028-02-29 is listed twice"),
    (lambda d: d["special_days"].append({"date": "2028-12-25", "profile": "christmas"}),
     r"special day 2028-12-25 uses unknown day profile 'christmas'"),
    (lambda d: d.update({"zone": "Europe/Atlantis"}), r"unknown time zone 'Europe/Atlantis'"),
])
def test_bad_tariff_is_refused_with_the_exact_problem(change, message):
    with pytest.raises(ValueError, match=message):
        tariff_from_dict(_with(change))


def test_bad_interval_data_is_refused():
    tariff = tariff_from_dict(ECONOMY7)
    with pytest.raises(ValueError, match=r"interval starting 2026-01-05T12:10:00\+00:00 is not the start"):
        bill(tariff, [utc(2026, 1, 5, 12, 10)], [1.0])
    with pytest.raises(ValueError, match=r"2026-01-07T00:00:00\+00:00 is outside the bill period 2026-01-05"):
        bill(tariff, [utc(2026, 1, 7)], [1.0], first_day=datetime.date(2026, 1, 5),
             last_day=datetime.date(2026, 1, 6))
    with pytest.raises(ValueError, match="import energy must not be negative or NaN"):
        bill(tariff, [utc(2026, 1, 5)], [-1.0])
    with pytest.raises(ValueError, match="an interval start is repeated"):
        bill(tariff, [utc(2026, 1, 5)] * 2, [1.0, 1.0])
    with pytest.raises(ValueError, match="1 starts, 2 import and 2 export values"):
        bill(tariff, [utc(2026, 1, 5)], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"bill period ends \(2026-01-01\) before it starts"):
        bill(tariff, [], [], first_day=datetime.date(2026, 1, 2), last_day=datetime.date(2026, 1, 1))


def test_bad_batch_input_is_refused():
    tariff = tariff_from_dict(ECONOMY7)
    day = datetime.date(2026, 1, 5)
    with pytest.raises(ValueError, match=r"import has 47 periods; 2026-01-05 to 2026-01-05 in Europe/London has 48"):
        bill_meters(tariff, np.zeros((2, 47)), first_day=day, last_day=day)
    with pytest.raises(ValueError, match=r"export is \(1, 48\), import \(2, 48\)"):
        bill_meters(tariff, np.zeros((2, 48)), np.zeros((1, 48)), first_day=day, last_day=day)
    with pytest.raises(ValueError, match=r"export energy must not be negative or NaN"):
        bill_meters(tariff, np.zeros((1, 48)), np.full((1, 48), np.nan), first_day=day, last_day=day)
    with pytest.raises(ValueError, match="energy must be finite"):
        bill_meters(tariff, np.full((1, 48), np.inf), first_day=day, last_day=day)
    with pytest.raises(ValueError, match=r"opening_block_kwh: one figure, or one per meter \(2\)"):
        bill_meters(tariff, np.zeros((2, 48)), first_day=day, last_day=day, opening_block_kwh=[1, 2, 3])
    with pytest.raises(ValueError, match="must be \\(meters, periods\\), not 3-dimensional"):
        bill_meters(tariff, np.zeros((1, 1, 48)), first_day=day, last_day=day)
