"""Tariffs, billing, gas conversion and prepayment (host software; see ``docs/tariffs.md``).

Everything is computed on UTC settlement periods; local time (``Europe/London``
unless the tariff says otherwise) appears only in :mod:`.calendar`.

The names below are imported on first use (PEP 562), so that the ``refmeter`` CLI,
which adds its ``bill`` command from this package, starts without numpy.
"""

import importlib
from typing import TYPE_CHECKING

#: Each public name and the module it lives in.
_MODULES = {
    "AMOUNT_DECIMALS": "billing", "Bill": "billing", "BillBatch": "billing", "BillLine": "billing",
    "bill": "billing", "bill_meters": "billing",
    "SETTLEMENT_PERIOD_S": "calendar", "Calendar": "calendar", "LocalClock": "calendar",
    "resolve_calendar": "calendar",
    "intervals_from_profile": "intervals", "read_interval_csv": "intervals",
    "Blocks": "model", "DayProfile": "model", "Rate": "model", "Season": "model", "Tariff": "model",
    "load_tariff": "model", "tariff_from_dict": "model",
}

__all__ = list(_MODULES)


def __getattr__(name: str):
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_MODULES[name]}", __name__), name)


if TYPE_CHECKING:
    from .billing import AMOUNT_DECIMALS, Bill, BillBatch, BillLine, bill, bill_meters
    from .calendar import SETTLEMENT_PERIOD_S, Calendar, LocalClock, resolve_calendar
    from .intervals import intervals_from_profile, read_interval_csv
    from .model import Blocks, DayProfile, Rate, Season, Tariff, load_tariff, tariff_from_dict
