"""The tariff: rates, the calendar that picks one per settlement period, blocks and charges.

A tariff is stated in the customer's local time (``Europe/London`` unless it says
otherwise) because that is how suppliers publish them; everything else works on UTC
settlement periods (:mod:`.calendar` turns the one into the other once per bill
period). Prices are exact decimals in the currency's minor unit: pence per kWh for
energy, pence per day for the standing charge. Schema: ``docs/tariffs.md``.

Validation refuses, with the exact problem, a day profile with a gap or an overlap,
seasons that leave a day of the year uncovered or cover one twice, a special day
listed twice, an unknown rate or profile, and a negative price.
"""

import datetime
import json
import tomllib
import zoneinfo
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Mapping

__all__ = ["Rate", "DayProfile", "Season", "Blocks", "Tariff", "SLOTS_PER_DAY", "WEEKDAYS",
           "BLOCK_PERIODS", "PRICE_DECIMALS", "tariff_from_dict", "load_tariff"]

#: Half-hour settlement periods in a local day of 24 hours (clock-change days have 46 or 50).
SLOTS_PER_DAY = 48
#: Week keys of a season, Monday first (``datetime.date.weekday()`` order).
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: How often block consumption starts again from zero, in local time.
BLOCK_PERIODS = ("day", "month", "quarter", "year")
#: Decimal places a price may have (of a penny per kWh or per day): the billing engine
#: computes in whole units of 10**-PRICE_DECIMALS so that every amount is exact.
PRICE_DECIMALS = 4


def _price(value: Any, where: str) -> Decimal:
    try:
        # str() first: a JSON float 0.1 must mean the decimal 0.1, not its binary neighbour.
        price = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{where}: {value!r} is not a price") from None
    if not price.is_finite():
        raise ValueError(f"{where}: {value!r} is not a price")
    if price < 0:
        raise ValueError(f"{where}: negative price {price}")
    if price.as_tuple().exponent < -PRICE_DECIMALS and price != price.quantize(
            Decimal(1).scaleb(-PRICE_DECIMALS)):
        raise ValueError(f"{where}: {price} has more than {PRICE_DECIMALS} decimal places")
    return price


@dataclass(frozen=True)
class Rate:
    """One time-of-use rate: import prices per block tier and the export price.

    ``import_prices[k]`` is the price in tier ``k`` (p/kWh); a tariff without blocks
    has one tier. ``export_price`` is paid for energy exported while the rate is in force.
    """

    name: str
    import_prices: tuple[Decimal, ...]
    export_price: Decimal = Decimal(0)


@dataclass(frozen=True)
class DayProfile:
    """Which rate is in force in each local half-hour of a day: 48 rate names, from 00:00.

    On a clock-change day the repeated local hour takes its rate twice and the skipped
    one not at all: the rate follows the clock on the wall.
    """

    name: str
    slot_rates: tuple[str, ...]


@dataclass(frozen=True)
class Season:
    """Local dates from ``start`` (inclusive) to ``end`` (exclusive) as (month, day),
    wrapping over the new year; ``start == end`` is the whole year. ``week`` names
    the day profile for each weekday, Monday first."""

    name: str
    start: tuple[int, int]
    end: tuple[int, int]
    week: tuple[str, ...]

    def contains(self, month_day: tuple[int, int]) -> bool:
        """Whether a local (month, day) falls in the season."""
        if self.start == self.end:
            return True
        if self.start < self.end:
            return self.start <= month_day < self.end
        return month_day >= self.start or month_day < self.end


@dataclass(frozen=True)
class Blocks:
    """Block (tiered) pricing: consumption since the start of the block period, in kWh,
    crossing ``thresholds_kwh`` moves to the next tier; the last tier is unbounded."""

    period: str
    thresholds_kwh: tuple[Decimal, ...]

    @property
    def tiers(self) -> int:
        return len(self.thresholds_kwh) + 1


@dataclass(frozen=True)
class Tariff:
    """A complete tariff, validated on construction (see the module docstring)."""

    name: str
    version: int
    rates: tuple[Rate, ...]
    day_profiles: tuple[DayProfile, ...]
    seasons: tuple[Season, ...]
    special_days: tuple[tuple[datetime.date, str], ...] = ()
    blocks: "Blocks | None" = None
    standing_charge_per_day: Decimal = Decimal(0)
    zone: str = "Europe/London"
    #: Time-of-use, days and block periods follow the zone's standard time all year
    #: (GMT for Europe/London), so a rate window does not move with summer time.
    standard_time_all_year: bool = False

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def tiers(self) -> int:
        return 1 if self.blocks is None else self.blocks.tiers

    @property
    def rate_names(self) -> tuple[str, ...]:
        return tuple(rate.name for rate in self.rates)

    def profile(self, local_date: datetime.date) -> DayProfile:
        """The day profile in force on a local date: a special day's, else its season's."""
        by_name = {profile.name: profile for profile in self.day_profiles}
        special = dict(self.special_days)
        if local_date in special:
            return by_name[special[local_date]]
        month_day = (local_date.month, local_date.day)
        season = next(season for season in self.seasons if season.contains(month_day))
        return by_name[season.week[local_date.weekday()]]


def _all_month_days() -> list[tuple[int, int]]:
    leap_year = datetime.date(2028, 1, 1)
    return [((leap_year + datetime.timedelta(days)).month, (leap_year + datetime.timedelta(days)).day)
            for days in range(366)]


def _validate(tariff: Tariff) -> None:
    if tariff.version < 0:
        raise ValueError(f"tariff version {tariff.version} is negative")
    try:
        zoneinfo.ZoneInfo(tariff.zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {tariff.zone!r}") from None
    if not tariff.rates:
        raise ValueError("the tariff has no rates")
    names = [rate.name for rate in tariff.rates]
    if len(set(names)) != len(names):
        raise ValueError(f"rate names repeat: {names}")
    if len(names) > 48:
        raise ValueError(f"{len(names)} rates: at most 48")
    for rate in tariff.rates:
        if len(rate.import_prices) != tariff.tiers:
            raise ValueError(f"rate {rate.name!r} has {len(rate.import_prices)} import prices "
                             f"for {tariff.tiers} block tiers")
    if tariff.blocks is not None:
        if tariff.blocks.period not in BLOCK_PERIODS:
            raise ValueError(f"block period {tariff.blocks.period!r}: one of {', '.join(BLOCK_PERIODS)}")
        thresholds = tariff.blocks.thresholds_kwh
        if not thresholds or any(t <= 0 for t in thresholds) or list(thresholds) != sorted(set(thresholds)):
            raise ValueError(f"block thresholds {[str(t) for t in thresholds]} must be positive "
                             f"and increasing")
    profiles = {profile.name for profile in tariff.day_profiles}
    for profile in tariff.day_profiles:
        unknown = sorted(set(profile.slot_rates) - set(names))
        if unknown:
            raise ValueError(f"day profile {profile.name!r} uses unknown rate {unknown[0]!r}")
    if not tariff.seasons:
        raise ValueError("the tariff has no seasons")
    for season in tariff.seasons:
        for weekday, profile in zip(WEEKDAYS, season.week):
            if profile not in profiles:
                raise ValueError(f"season {season.name!r}: {weekday} uses unknown day profile {profile!r}")
    for month_day in _all_month_days():
        covering = [season.name for season in tariff.seasons if season.contains(month_day)]
        if len(covering) != 1:
            problem = "no season covers" if not covering else f"seasons {covering} overlap on"
            raise ValueError(f"{problem} {month_day[0]:02}-{month_day[1]:02}")
    dates = [date for date, _ in tariff.special_days]
    if len(set(dates)) != len(dates):
        repeated = next(date for date in dates if dates.count(date) > 1)
        raise ValueError(f"special day {repeated.isoformat()} is listed twice")
    for date, profile in tariff.special_days:
        if profile not in profiles:
            raise ValueError(f"special day {date.isoformat()} uses unknown day profile {profile!r}")


# --- Reading a tariff file (schema: docs/tariffs.md) -------------------------------------

def _minutes(text: str, where: str) -> int:
    try:
        hours, minutes = (int(part) for part in text.split(":"))
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not HH:MM") from None
    if not (0 <= hours <= 24 and minutes in (0, 30)) or hours * 60 + minutes > 24 * 60:
        raise ValueError(f"{where}: {text!r} is not a half-hour boundary between 00:00 and 24:00")
    return hours * 60 + minutes


def _clock(slot: int) -> str:
    return f"{slot // 2:02}:{slot % 2 * 30:02}"


def _day_profile(name: str, windows: list[Mapping[str, str]]) -> DayProfile:
    """Windows ``{"from": "07:00", "to": "23:00", "rate": "day"}`` (``to`` exclusive,
    may wrap past midnight) to 48 slot rates, refusing gaps and overlaps."""
    owners: list[list[str]] = [[] for _ in range(SLOTS_PER_DAY)]
    for index, window in enumerate(windows):
        where = f"day profile {name!r} window {index + 1}"
        start = _minutes(window["from"], where) // 30 % SLOTS_PER_DAY
        end = _minutes(window["to"], where) // 30 % SLOTS_PER_DAY
        slot = start
        while True:  # from == to is the whole day
            owners[slot].append(window["rate"])
            slot = (slot + 1) % SLOTS_PER_DAY
            if slot == end:
                break
    for slot, rates in enumerate(owners):
        if len(rates) != 1:
            run_end = slot
            while run_end < SLOTS_PER_DAY and owners[run_end] == rates:
                run_end += 1
            span = f"{_clock(slot)} to {_clock(run_end)}"
            if not rates:
                raise ValueError(f"day profile {name!r} has a gap: no rate from {span}")
            raise ValueError(f"day profile {name!r} has an overlap: rates {rates} both from {span}")
    return DayProfile(name, tuple(rates[0] for rates in owners))


def _month_day(text: str, where: str) -> tuple[int, int]:
    try:
        date = datetime.date.fromisoformat(f"2028-{text}")  # a leap year: 02-29 is allowed
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not MM-DD") from None
    return date.month, date.day


def tariff_from_dict(data: Mapping[str, Any]) -> Tariff:
    """A :class:`Tariff` from the parsed JSON or TOML of a tariff file."""
    try:
        return _tariff_from_dict(data)
    except KeyError as error:
        raise ValueError(f"the tariff has no {error.args[0]!r}") from None
    except (TypeError, AttributeError) as error:
        raise ValueError(f"the tariff's layout is wrong ({error}): see docs/tariffs.md") from None


def _tariff_from_dict(data: Mapping[str, Any]) -> Tariff:
    blocks = None
    if "blocks" in data:
        blocks = Blocks(data["blocks"].get("period", "month"),
                        tuple(_price(t, "block threshold") for t in data["blocks"]["thresholds_kwh"]))
    rates = []
    for name, rate in data["rates"].items():
        prices = rate["import"] if isinstance(rate["import"], list) else [rate["import"]]
        rates.append(Rate(name, tuple(_price(p, f"rate {name!r} import") for p in prices),
                          _price(rate.get("export", 0), f"rate {name!r} export")))
    seasons = []
    for index, season in enumerate(data.get("seasons", [{"name": "all year"}])):
        name = season.get("name", f"season {index + 1}")
        week = season.get("week", {day: "default" for day in WEEKDAYS})
        missing = [day for day in WEEKDAYS if day not in week]
        if missing:
            raise ValueError(f"season {name!r} has no day profile for {missing[0]}")
        seasons.append(Season(name, _month_day(season.get("from", "01-01"), f"season {name!r}"),
                              _month_day(season.get("to", "01-01"), f"season {name!r}"),
                              tuple(week[day] for day in WEEKDAYS)))
    special_days = []
    for entry in data.get("special_days", []):
        try:
            date = datetime.date.fromisoformat(entry["date"])
        except ValueError:
            raise ValueError(f"special day {entry['date']!r} is not YYYY-MM-DD") from None
        special_days.append((date, entry["profile"]))
    return Tariff(
        name=data["name"], version=int(data.get("version", 0)), rates=tuple(rates),
        day_profiles=tuple(_day_profile(name, windows) for name, windows in data["day_profiles"].items()),
        seasons=tuple(seasons), special_days=tuple(special_days), blocks=blocks,
        standing_charge_per_day=_price(data.get("standing_charge_per_day", 0), "standing charge"),
        zone=data.get("zone", "Europe/London"),
        standard_time_all_year=bool(data.get("standard_time_all_year", False)))


def load_tariff(path: "str | Path") -> Tariff:
    """Read a tariff file: TOML if its name ends in ``.toml``, JSON otherwise."""
    path = Path(path)
    if path.suffix == ".toml":
        with path.open("rb") as file:
            return tariff_from_dict(tomllib.load(file))
    return tariff_from_dict(json.loads(path.read_text()))
