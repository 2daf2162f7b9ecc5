"""Tariffs, billing, gas conversion and prepayment (host software; see ``docs/tariffs.md``).

Everything is computed on UTC settlement periods; local time (``Europe/London``
unless the tariff says otherwise) appears only in :mod:`.calendar`.
"""

from .billing import AMOUNT_DECIMALS, Bill, BillBatch, BillLine, bill, bill_meters
from .calendar import SETTLEMENT_PERIOD_S, Calendar, LocalClock, resolve_calendar
from .intervals import intervals_from_profile, read_interval_csv
from .model import Blocks, DayProfile, Rate, Season, Tariff, load_tariff, tariff_from_dict

__all__ = ["AMOUNT_DECIMALS", "Bill", "BillBatch", "BillLine", "bill", "bill_meters",
           "intervals_from_profile", "read_interval_csv", "SETTLEMENT_PERIOD_S", "Calendar", "LocalClock",
           "resolve_calendar", "Blocks", "DayProfile", "Rate", "Season", "Tariff", "load_tariff",
           "tariff_from_dict"]
