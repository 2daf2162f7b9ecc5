"""Tariffs, billing, gas conversion and prepayment (host software; see ``docs/tariffs.md``).

Everything is computed on UTC settlement periods; local time (``Europe/London``
unless the tariff says otherwise) appears only in :mod:`.calendar`.
"""

from .billing import AMOUNT_DECIMALS, Bill, BillBatch, BillLine, bill, bill_meters, intervals_from_profile
from .calendar import SETTLEMENT_PERIOD_S, Calendar, LocalClock, resolve_calendar
from .model import Blocks, DayProfile, Rate, Season, Tariff, load_tariff, tariff_from_dict

__all__ = ["AMOUNT_DECIMALS", "Bill", "BillBatch", "BillLine", "bill", "bill_meters",
           "intervals_from_profile", "SETTLEMENT_PERIOD_S", "Calendar", "LocalClock",
           "resolve_calendar", "Blocks", "DayProfile", "Rate", "Season", "Tariff", "load_tariff",
           "tariff_from_dict"]
