"""The billing engine: interval energy and a tariff to a bill with one line per charge.

Money is exact. Energy is billed in whole Wh, the meter's resolution: :func:`bill`
rounds kWh to the nearest Wh in each interval (so meter data is never rounded at all),
and a line's energy is rounded once to a whole Wh. A line's quantity is that energy
or a number of local days;
its amount is quantity x price, exact, in pence (prices have at most
:data:`~.model.PRICE_DECIMALS` decimal places, so every amount is a whole number of
10**-7 p and is held as an integer). A bill's total is the exact sum of its lines;
:attr:`Bill.payable` rounds that total once, half to even, to a whole penny.

:func:`bill_meters` bills many meters over one bill period at once: the calendar is
resolved once (:func:`~.calendar.resolve_calendar`) and :mod:`.engine` sums energy
per rate and block tier with matrix products; an interval that crosses a block
threshold is split at it.
"""

import datetime
import functools
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Sequence

import numpy as np

from .calendar import Calendar, LocalClock, resolve_calendar
from .engine import energy_by_rate_and_tier, total_by_rate
from .model import PRICE_DECIMALS, Tariff

__all__ = ["BillLine", "Bill", "BillBatch", "bill", "bill_meters", "AMOUNT_DECIMALS"]

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
        """The bill as text for a person, in pence: each line (amounts shown to 10**-4 p;
        :meth:`to_json` has them exact), the exact total and the payable total."""
        rows = [(line.description, f"{line.quantity:,} {line.unit}{'' if line.quantity == 1 else 's'}"
                 if line.unit == "day" else f"{line.quantity:,} {line.unit}", f"{line.price} p",
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


def _energy_wh(name: str, energy: np.ndarray) -> np.ndarray:
    energy = np.atleast_2d(np.asarray(energy))
    if energy.ndim != 2:
        raise ValueError(f"{name} energy must be (meters, periods), not {energy.ndim}-dimensional")
    if energy.dtype not in (np.float32, np.float64):
        energy = energy.astype(np.float64)
    if energy.size and not energy.min() >= 0:  # also catches NaN
        raise ValueError(f"{name} energy must not be negative or NaN")
    return energy


def bill_meters(tariff: Tariff, import_wh: np.ndarray, export_wh: "np.ndarray | None" = None, *,
                first_day: datetime.date, last_day: datetime.date,
                opening_block_kwh: "float | np.ndarray" = 0.0) -> BillBatch:
    """Bill meters whose energy is given in Wh for every settlement period of the bill period.

    ``import_wh`` and ``export_wh`` are (meters, periods), period ``i`` starting at
    ``calendar.start_s + 1800 * i`` (see :func:`~.calendar.resolve_calendar`); whole Wh,
    as a meter records them, are summed exactly, in float32 (fastest) or float64.
    Each line's energy is rounded once to a whole Wh. ``opening_block_kwh`` is what
    each meter had already used in the block period current at the start (its
    previous bill's ``closing_block_kwh``).
    """
    calendar = resolve_calendar(tariff, first_day, last_day)
    import_wh = _energy_wh("import", import_wh)
    meters = import_wh.shape[0]
    if import_wh.shape[1] != calendar.periods:
        raise ValueError(f"import has {import_wh.shape[1]} periods; {first_day} to {last_day} "
                         f"in {tariff.zone} has {calendar.periods}")
    if export_wh is not None:
        export_wh = _energy_wh("export", export_wh)
        if export_wh.shape != import_wh.shape:
            raise ValueError(f"export is {export_wh.shape}, import {import_wh.shape}: one of each "
                             f"per meter and period")
    opening_wh = np.asarray(opening_block_kwh, dtype=np.float64) * 1000
    if opening_wh.shape not in ((), (meters,)):
        raise ValueError(f"opening_block_kwh: one figure, or one per meter ({meters}), not {opening_wh.shape}")
    # An infinite input becomes a NaN in the products (inf x 0), refused just below;
    # looking for it beforehand would cost another pass over the data.
    with np.errstate(invalid="ignore", over="ignore"):
        by_tier, closing_wh = energy_by_rate_and_tier(calendar, import_wh,
                                                      np.broadcast_to(opening_wh, (meters,)))
        exported = (np.zeros((meters, len(tariff.rates))) if export_wh is None
                    else total_by_rate(calendar, export_wh))
    # Lines in _line_specs order: import by rate then tier, export by rate, standing charge.
    energy = np.concatenate([by_tier.reshape(meters, -1), exported], axis=1)
    if not np.isfinite(energy).all():
        raise ValueError("energy must be finite")
    quantities = np.concatenate([np.rint(energy).astype(np.int64),
                                 np.full((meters, 1), calendar.days, dtype=np.int64)], axis=1)
    return BillBatch(calendar, quantities, quantities * _line_factors(tariff),
                     np.rint(closing_wh).astype(np.int64))


@functools.lru_cache(maxsize=64)
def _line_factors(tariff: Tariff) -> np.ndarray:
    """Per line, what one unit of quantity costs in 10**-AMOUNT_DECIMALS p: a Wh at
    10**-4 p/kWh is 10**-7 p, a day at 10**-4 p/day is 1000 x 10**-7 p; exports credit."""
    return np.array([int(spec.price.scaleb(PRICE_DECIMALS)) * (-1 if spec.kind == "export" else 1)
                     * (1000 if spec.unit == "day" else 1) for spec in _line_specs(tariff)],
                    dtype=np.int64)


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
    grid[0, positions] = np.rint(import_kwh * 1000)
    grid[1, positions] = np.rint(export_kwh * 1000)
    if not np.isfinite(grid).all():
        raise ValueError("energy must be finite")
    return bill_meters(tariff, grid[:1], grid[1:], first_day=first_day, last_day=last_day,
                       opening_block_kwh=opening_block_kwh).bill(0)
