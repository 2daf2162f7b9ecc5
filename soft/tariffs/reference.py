"""NREL's PySAM rate engine (``PySAM.Utilityrate5``) on the same tariff and data, as an
independent check of :mod:`.billing` (tests and ``benchmarks/billing.py``; PySAM is
a test dependency, imported only here).

SAM's semantics, which the comparison keeps to:

* ``ur_metering_option = 2`` (net billing) nets import and export within each time
  step; the step is set by the length of the ``gen``/``load`` arrays (17520:
  half-hourly), which are average kW over the step. Intervals given here import or
  export, never both, so netting changes nothing.
* Tiers count gross import per calendar month, in time order, and split a step that
  crosses a limit (the same rule as a block tariff's here); the last tier's limit
  must be huge (1e38).
* A 365-day year that starts on a Monday, with no clock changes, on 12 x 24 hourly
  weekday and weekend schedules: compare on such a year (2029) with the tariff in UTC.
* Its energy-charge table per period and tier nets the sale credit earned in that
  period, spread over the tiers its own way; per period (summed over tiers) it is the
  period's import charges less its export credit, which is how to compare it.
* Charges and credits are in the currency's major unit; this module returns them in
  the minor unit (x 100), the tariff's pence or cents.
"""

import datetime

import numpy as np

from .model import SLOTS_PER_DAY, Tariff

__all__ = ["SAM_YEAR", "sam_bill", "sam_year_days"]

#: A year SAM models as it is: 365 days from a Monday.
SAM_YEAR = 2029
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


def _schedules(tariff: Tariff) -> tuple[list[list[int]], list[list[int]]]:
    """SAM's 12 x 24 weekday and weekend period schedules (periods from 1), refusing a
    tariff SAM cannot express: one that is not in UTC, has special days or half-hour
    windows, differs among weekdays or between Saturday and Sunday, or changes season
    other than at the start of a month."""
    if tariff.zone not in ("UTC", "Etc/UTC") or tariff.special_days:
        raise ValueError("SAM needs a tariff in UTC with no special days")
    profiles = {profile.name: profile for profile in tariff.day_profiles}
    rate_number = {name: index + 1 for index, name in enumerate(tariff.rate_names)}
    weekday, weekend = [], []
    for month in range(1, 13):
        season = next(season for season in tariff.seasons if season.contains((month, 1)))
        if not all(season.contains((month, day)) for day in range(1, 29)):
            raise ValueError(f"season {season.name!r} changes within month {month}")
        for days, schedule in ((season.week[:5], weekday), (season.week[5:], weekend)):
            if len(set(days)) != 1:
                raise ValueError(f"season {season.name!r} has different profiles on {days}")
            slots = profiles[days[0]].slot_rates
            if any(slots[slot] != slots[slot + 1] for slot in range(0, SLOTS_PER_DAY, 2)):
                raise ValueError(f"day profile {days[0]!r} changes rate on the half hour")
            schedule.append([rate_number[slots[2 * hour]] for hour in range(24)])
    return weekday, weekend


def sam_bill(tariff: Tariff, import_kwh: np.ndarray, export_kwh: np.ndarray) -> dict:
    """Run PySAM on one meter's half-hourly year (17520 periods of :data:`SAM_YEAR`, UTC).

    Returns a year's ``{"net_by_rate": (rates,) energy charges less sale credits,
    "import_kwh": (rates, tiers) energy, "export": total sale credit}``, money in
    minor units.
    """
    import PySAM.Utilityrate5 as utilityrate5  # a test dependency: imported only when used

    periods = 2 * 24 * 365
    if len(import_kwh) != periods or len(export_kwh) != periods:
        raise ValueError(f"SAM bills a whole year of {periods} half-hours")
    if ((import_kwh > 0) & (export_kwh > 0)).any():
        raise ValueError("SAM nets import and export within a step: give one or the other")
    weekday, weekend = _schedules(tariff)
    limits = [float(t) for t in tariff.blocks.thresholds_kwh] if tariff.blocks else []
    limits.append(1e38)
    model = utilityrate5.new()
    model.Lifetime.analysis_period = 1
    model.Lifetime.system_use_lifetime_output = 0
    model.Lifetime.inflation_rate = 0
    model.SystemOutput.degradation = [0]
    model.Load.load_escalation = [0]
    steps_per_hour = 2
    model.SystemOutput.gen = (np.asarray(export_kwh) * steps_per_hour).tolist()  # kWh -> average kW
    model.Load.load = (np.asarray(import_kwh) * steps_per_hour).tolist()
    rates = model.ElectricityRates
    rates.rate_escalation = [0]
    rates.ur_metering_option = 2
    rates.ur_monthly_fixed_charge = 0
    rates.ur_monthly_min_charge = 0
    rates.ur_annual_min_charge = 0
    rates.ur_dc_enable = 0
    rates.ur_ec_sched_weekday = weekday
    rates.ur_ec_sched_weekend = weekend
    rates.ur_ec_tou_mat = [
        [period, tier + 1, limits[tier], 0, float(price) / 100, float(rate.export_price) / 100]
        for period, rate in enumerate(tariff.rates, start=1)
        for tier, price in enumerate(rate.import_prices)]
    model.execute()
    outputs = model.Outputs
    charges = np.zeros((len(tariff.rates), tariff.tiers))
    energy = np.zeros_like(charges)
    for month in _MONTHS:
        # Row 0 and column 0 are headers (period and tier numbers); the last row and
        # column are totals. Periods with no use in a month may be left out.
        for table, total in ((getattr(outputs, f"charge_w_sys_ec_{month}_tp"), charges),
                             (getattr(outputs, f"energy_w_sys_ec_{month}_tp"), energy)):
            for row in np.asarray(table)[1:-1]:
                total[int(row[0]) - 1] += row[1:1 + tariff.tiers]
    return {"net_by_rate": charges.sum(axis=1) * 100, "import_kwh": energy,
            "export": float(np.sum(outputs.net_billing_credits_ym[1])) * 100}


def sam_year_days() -> tuple[datetime.date, datetime.date]:
    """The first and last day of :data:`SAM_YEAR`."""
    return datetime.date(SAM_YEAR, 1, 1), datetime.date(SAM_YEAR, 12, 31)
