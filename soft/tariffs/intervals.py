"""Interval data in: the meter's load profile, and CSV files.

Everything here gives the billing API's form: UTC settlement-period starts (seconds
since the epoch), kWh imported and kWh exported, one of each per period.

Two CSV forms are read, told apart by their header row:

* what ``refmeter profile --csv`` writes (:data:`~refmeter.soft.profile.CSV_COLUMNS`);
* ``timestamp,kwh`` with an optional third column ``export_kwh``: the start of each
  half-hour in ISO 8601 with its UTC offset (``2026-01-05T12:30:00Z``), and kWh.
"""

import csv
import datetime
from pathlib import Path
from typing import Iterable

import numpy as np

from ..profile import CSV_COLUMNS, ProfileRecord
from .calendar import SETTLEMENT_PERIOD_S

__all__ = ["intervals_from_profile", "read_interval_csv", "SIMPLE_CSV_COLUMNS"]

#: The simple CSV's header: the last column is optional.
SIMPLE_CSV_COLUMNS = ("timestamp", "kwh", "export_kwh")

Intervals = tuple[np.ndarray, np.ndarray, np.ndarray]


def intervals_from_profile(records: Iterable[ProfileRecord]) -> Intervals:
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


def _instant(text: str, where: str) -> datetime.datetime:
    try:
        instant = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not an ISO 8601 time") from None
    if instant.utcoffset() is None:
        raise ValueError(f"{where}: {text!r} has no UTC offset (write Z or +00:00)")
    return instant


def _number(text: str, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not a number") from None


def read_interval_csv(path: "str | Path") -> Intervals:
    """Intervals from either CSV form (see the module docstring)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror}") from None
    rows = csv.DictReader(text.splitlines())
    header = tuple(rows.fieldnames or ())
    if header == CSV_COLUMNS:
        records = []
        for line, row in enumerate(rows, start=2):
            where = f"{path.name} line {line}"
            records.append(ProfileRecord(
                number=int(row["number"]), start=None, end=_instant(row["end"], where),
                active_import_wh=int(row["active_import_wh"]), active_export_wh=int(row["active_export_wh"]),
                power_up=row["power_up"] == "1", clock_set=row["clock_set"] == "1",
                interval_changed=row["interval_changed"] == "1"))
        return intervals_from_profile(records)
    if header in (SIMPLE_CSV_COLUMNS[:2], SIMPLE_CSV_COLUMNS):
        starts, imported, exported = [], [], []
        for line, row in enumerate(rows, start=2):
            where = f"{path.name} line {line}"
            starts.append(int(_instant(row["timestamp"], where).timestamp()))
            imported.append(_number(row["kwh"], where))
            exported.append(_number(row.get("export_kwh") or "0", where))
        return np.array(starts, dtype=np.int64), np.array(imported), np.array(exported)
    raise ValueError(f"{path.name}: header {','.join(header)!r} is neither {','.join(CSV_COLUMNS)!r} "
                     f"(refmeter profile --csv) nor {','.join(SIMPLE_CSV_COLUMNS[:2])!r}[,export_kwh]")
