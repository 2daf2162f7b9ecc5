"""The billing engine: interval energy and a tariff to a bill with one line per charge.

Money is exact. A bill line's quantity is energy rounded once to a whole Wh (the
meter's resolution, so meter data is never rounded at all) or a number of local days;
its amount is quantity x price, exact, in pence (prices have at most
:data:`~.model.PRICE_DECIMALS` decimal places, so every amount is a whole number of
10**-7 p and is held as an integer). A bill's total is the exact sum of its lines;
:attr:`Bill.payable` rounds that total once, half to even, to a whole penny.

:func:`bill_meters` bills many meters over one bill period at once: the calendar is
resolved once (:func:`~.calendar.resolve_calendar`), and sums per rate are matrix
products of the (meters x periods) energy with the calendar's one-hot rate matrix.
Block tiers are found on cumulative consumption per block period, so an interval
that crosses a threshold is split at it.
"""

import datetime
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Iterable, Sequence

import numpy as np

from ..profile import ProfileRecord
from .calendar import SETTLEMENT_PERIOD_S, Calendar, LocalClock, resolve_calendar
from .model import PRICE_DECIMALS, Tariff

__all__ = ["BillLine", "Bill", "BillBatch", "bill", "bill_meters", "intervals_from_profile",
           "AMOUNT_DECIMALS"]

#: Amounts are whole numbers of 10**-AMOUNT_DECIMALS pence: a price unit per kWh times Wh.
AMOUNT_DECIMALS = PRICE_DECIMALS + 3
_PRICE_SCALE = 10 ** PRICE_DECIMALS
_UTC = datetime.timezone.utc


@dataclass(frozen=True)
class BillLine:
    """One charge: ``quantity`` (kWh or days) x ``price`` (p per unit) = ``amount`` (p).

    Export lines are credits: their amount is negative.
    """

    kind: str                   #: "import", "export" or "standing charge"
    rate: "str | None"          #: the time-of-use rate, for energy lines
    tier: "int | None"          #: the block tier, from 1, on a block tariff's import lines
    quantity: Decimal
    unit: str                   #: "kWh" or "day"
    price: Decimal
    amount: Decimal

    @property
    def description(self) -> str:
        if self.kind == "standing charge":
            return "standing charge"
        tier = "" if self.tier is None else f", block {self.tier}"
        return f"{self.kind}, {self.rate}{tier}"

    def to_json(self) -> dict:
        return {"description": self.description, "kind": self.kind, "rate": self.rate,
                "tier": self.tier, "quantity": str(self.quantity), "unit": self.unit,
                "price": str(self.price), "amount": str(self.amount)}


@dataclass(frozen=True)
class Bill:
    """A bill for local days ``first_day`` to ``last_day`` inclusive, amounts in pence."""

    tariff: str
    version: int
    zone: str
    first_day: datetime.date
    last_day: datetime.date
    lines: tuple[BillLine, ...]
    #: kWh counted in the block period current at the end: the next bill's opening figure.
    closing_block_kwh: Decimal

    @property
    def total(self) -> Decimal:
        """The exact sum of the lines, p."""
        return sum((line.amount for line in self.lines), Decimal(0))

    @property
    def payable(self) -> Decimal:
        """The total rounded once, half to even, to a whole penny."""
        return self.total.quantize(Decimal(1), rounding=ROUND_HALF_EVEN)

    def to_json(self) -> dict:
        return {"tariff": self.tariff, "version": self.version, "zone": self.zone,
                "first_day": self.first_day.isoformat(), "last_day": self.last_day.isoformat(),
                "lines": [line.to_json() for line in self.lines], "total": str(self.total),
                "payable": str(self.payable), "closing_block_kwh": str(self.closing_block_kwh)}

    def format(self, *, skip_zero: bool = True) -> str:
        """The bill as text for a person: pence, exact lines, the payable total."""
        rows = [(line.description, f"{line.quantity:,} {line.unit}", f"{line.price} p",
                 f"{line.amount:,.4f} p") for line in self.lines
                if not (skip_zero and line.quantity == 0)]
        rows.append(("total", "", "", f"{self.total:,.4f} p"))
        rows.append(("payable", "", "", f"{self.payable:,} p"))
        widths = [max(len(row[column]) for row in rows) for column in range(4)]
        header = (f"{self.tariff} (version {self.version}), {self.first_day} to {self.last_day}, "
                  f"local time {self.zone}")
        return "\n".join([header] + ["  ".join(cell.ljust(width) if column == 0 else cell.rjust(width)
                                               for column, (cell, width) in enumerate(zip(row, widths)))
                                     for row in rows])


@dataclass(frozen=True)
class _LineSpec:
    kind: str
    rate: "str | None"
    tier: "int | None"
    unit: str
    price: Decimal


def _line_specs(tariff: Tariff) -> list[_LineSpec]:
    tiered = tariff.blocks is not None
    specs = [_LineSpec("import", rate.name, tier + 1 if tiered else None, "kWh", price)
             for rate in tariff.rates for tier, price in enumerate(rate.import_prices)]
    specs += [_LineSpec("export", rate.name, None, "kWh", rate.export_price) for rate in tariff.rates]
    specs.append(_LineSpec("standing charge", None, None, "day", tariff.standing_charge_per_day))
    return specs


@dataclass(frozen=True, eq=False)
class BillBatch:
    """Bills for many meters over one bill period, as integer arrays.

    ``quantities[m, line]`` is Wh (energy lines) or days (the standing charge);
    ``amounts[m, line]`` is 10**-:data:`AMOUNT_DECIMALS` p. :meth:`bill` gives one
    meter's :class:`Bill`.
    """

    calendar: Calendar
    quantities: np.ndarray
    amounts: np.ndarray
    closing_block_wh: np.ndarray

    @property
    def totals(self) -> np.ndarray:
        """Each meter's exact total, 10**-AMOUNT_DECIMALS p."""
        return self.amounts.sum(axis=1)

    def bill(self, meter: int) -> Bill:
        tariff = self.calendar.tariff
        lines = []
        for spec, quantity, amount in zip(_line_specs(tariff), self.quantities[meter].tolist(),
                                          self.amounts[meter].tolist()):
            lines.append(BillLine(spec.kind, spec.rate, spec.tier,
                                  Decimal(quantity).scaleb(-3) if spec.unit == "kWh" else Decimal(quantity),
                                  spec.unit, spec.price, Decimal(amount).scaleb(-AMOUNT_DECIMALS)))
        return Bill(tariff.name, tariff.version, tariff.zone, self.calendar.first_day,
                    self.calendar.last_day, tuple(lines),
                    Decimal(int(self.closing_block_wh[meter])).scaleb(-3))


def _one_hot(calendar: Calendar) -> np.ndarray:
    matrix = np.zeros((calendar.periods, len(calendar.tariff.rates)))
    matrix[np.arange(calendar.periods), calendar.rate] = 1
    return matrix


def _tier_energy(calendar: Calendar, import_wh: np.ndarray,
                 opening_wh: np.ndarray) -> "tuple[list[np.ndarray], np.ndarray]":
    """Import per tier, each (meters, periods), and each meter's closing block-period Wh.

    Consumption before each period within its block period comes from one cumulative
    sum, less its value where the block period began; a period's energy falls in tier
    ``k`` where that running figure lies between the tier's thresholds."""
    cumulative = np.cumsum(import_wh, axis=1)
    starts = np.flatnonzero(np.diff(calendar.block_period, prepend=-1))
    base = np.where(starts > 0, cumulative[:, np.maximum(starts - 1, 0)], 0.0)
    base[:, 0] -= opening_wh
    after = cumulative - base[:, calendar.block_period]
    before = after - import_wh
    bounds = [0.0] + [float(t) * 1000 for t in calendar.tariff.blocks.thresholds_kwh] + [np.inf]
    tiers = [np.clip(after, low, high) - np.clip(before, low, high)
             for low, high in zip(bounds[:-1], bounds[1:])]
    return tiers, after[:, -1]


def bill_meters(tariff: Tariff, import_kwh: np.ndarray, export_kwh: "np.ndarray | None" = None, *,
                first_day: datetime.date, last_day: datetime.date,
                opening_block_kwh: "float | np.ndarray" = 0.0) -> BillBatch:
    """Bill meters whose energy is given for every settlement period of the bill period.

    ``import_kwh`` and ``export_kwh`` are (meters, periods) in kWh, period ``i``
    starting ``calendar.start_s + 1800 * i`` (see :func:`~.calendar.resolve_calendar`);
    ``opening_block_kwh`` is what each meter had already used in the block period
    current at the start (from its previous bill's ``closing_block_kwh``).
    """
    calendar = resolve_calendar(tariff, first_day, last_day)
    import_wh = np.atleast_2d(np.asarray(import_kwh, dtype=np.float64)) * 1000
    export_wh = (np.zeros_like(import_wh) if export_kwh is None
                 else np.atleast_2d(np.asarray(export_kwh, dtype=np.float64)) * 1000)
    for name, energy in (("import", import_wh), ("export", export_wh)):
        if energy.shape[1] != calendar.periods:
            raise ValueError(f"{name} has {energy.shape[1]} periods; {first_day} to {last_day} "
                             f"in {tariff.zone} has {calendar.periods}")
        if not np.isfinite(energy).all() or (energy < 0).any():
            raise ValueError(f"{name} energy must be finite and not negative")
    meters = import_wh.shape[0]
    opening_wh = np.broadcast_to(np.asarray(opening_block_kwh, dtype=np.float64) * 1000, (meters,))
    one_hot = _one_hot(calendar)
    if tariff.blocks is None:
        tiers, closing_wh = [import_wh], np.zeros(meters)
    else:
        tiers, closing_wh = _tier_energy(calendar, import_wh, opening_wh)
    # Lines in _line_specs order: import by rate then tier, export by rate, standing charge.
    by_tier = np.stack([tier @ one_hot for tier in tiers], axis=2)        # (meters, rates, tiers)
    energy_wh = np.concatenate([by_tier.reshape(meters, -1), export_wh @ one_hot], axis=1)
    quantities = np.concatenate([np.rint(energy_wh).astype(np.int64),
                                 np.full((meters, 1), calendar.days, dtype=np.int64)], axis=1)
    specs = _line_specs(tariff)
    prices = np.array([int(spec.price.scaleb(PRICE_DECIMALS)) for spec in specs], dtype=np.int64)
    # Wh x (10**-4 p / kWh) = 10**-7 p; days x (10**-4 p / day) x 1000 = 10**-7 p.
    units = np.array([(-1 if spec.kind == "export" else 1) * (1000 if spec.unit == "day" else 1)
                      for spec in specs], dtype=np.int64)
    return BillBatch(calendar, quantities, quantities * prices * units,
                     np.rint(closing_wh).astype(np.int64))


def _local_day(tariff: Tariff, seconds: int) -> datetime.date:
    clock = LocalClock(tariff.zone, tariff.standard_time_all_year)
    return clock.local(datetime.datetime.fromtimestamp(seconds, _UTC)).date()


def bill(tariff: Tariff, starts: "Sequence[datetime.datetime] | np.ndarray",
         import_kwh: "Sequence[float] | np.ndarray",
         export_kwh: "Sequence[float] | np.ndarray | None" = None, *,
         first_day: "datetime.date | None" = None, last_day: "datetime.date | None" = None,
         opening_block_kwh: float = 0.0) -> Bill:
    """Bill one meter's intervals: UTC half-hour starts (aware datetimes, or seconds since
    the epoch) and the kWh imported (and exported) in each.

    The bill period is local days ``first_day`` to ``last_day`` (by default the days of
    the first and last interval); periods with no interval count as no energy.
    """
    starts_s = np.array([int(start.timestamp()) if isinstance(start, datetime.datetime) else int(start)
                         for start in starts], dtype=np.int64)
    import_kwh = np.asarray(import_kwh, dtype=np.float64)
    export_kwh = np.zeros_like(import_kwh) if export_kwh is None else np.asarray(export_kwh, np.float64)
    if not (len(starts_s) == len(import_kwh) == len(export_kwh)):
        raise ValueError(f"{len(starts_s)} starts, {len(import_kwh)} import and "
                         f"{len(export_kwh)} export values: one of each per interval")
    if len(np.unique(starts_s)) != len(starts_s):
        raise ValueError("an interval start is repeated")
    if first_day is None or last_day is None:
        if not len(starts_s):
            raise ValueError("no intervals, and no bill period given")
        first_day = first_day or _local_day(tariff, int(starts_s.min()))
        last_day = last_day or _local_day(tariff, int(starts_s.max()))
    calendar = resolve_calendar(tariff, first_day, last_day)
    positions = calendar.index(starts_s)
    grid = np.zeros((2, calendar.periods))
    grid[0, positions] = import_kwh
    grid[1, positions] = export_kwh
    return bill_meters(tariff, grid[:1], grid[1:], first_day=first_day, last_day=last_day,
                       opening_block_kwh=opening_block_kwh).bill(0)


def intervals_from_profile(records: Iterable[ProfileRecord]) -> "tuple[np.ndarray, np.ndarray, np.ndarray]":
    """The meter's load profile as (UTC period starts in s, import kWh, export kWh).

    A record is billed in the settlement period that holds its last second, so a
    partial record (power-up, clock set) adds to the period it ended in.
    """
    totals: dict[int, list[int]] = {}
    for record in records:
        end_s = int(record.end.timestamp())
        start_s = (end_s - 1) // SETTLEMENT_PERIOD_S * SETTLEMENT_PERIOD_S
        period = totals.setdefault(start_s, [0, 0])
        period[0] += record.active_import_wh
        period[1] += record.active_export_wh
    starts = np.array(sorted(totals), dtype=np.int64)
    energy = np.array([totals[start] for start in starts], dtype=np.float64).reshape(-1, 2) / 1000
    return starts, energy[:, 0], energy[:, 1]
