"""The load profile the meter keeps: interval energy, read from the gateware's ring.

The gateware writes one record per interval (``profile_interval_s``, 1800 s by
default) into a ring of ``profile_capacity`` records, host or no host. Records are
numbered from 0 at the meter's power-up; ``profile_head`` is the number of the next
one, so the ring holds records ``head - capacity`` to ``head - 1``. To read record
``n`` the host writes ``n`` to ``profile_select`` and reads ``profile_record``
(:mod:`.ring`). See ``docs/metrology.md`` (Load profile).
"""

import datetime
from dataclasses import dataclass
from typing import Callable

from .device import Meter
from .registers import RegisterValue
from .ring import NUMBER_MODULUS, read_ring

__all__ = ["ProfileRecord", "read_profile", "CSV_COLUMNS"]

#: Columns of :meth:`ProfileRecord.to_json`, in the order the CLI's CSV writes them.
CSV_COLUMNS = ("number", "start", "end", "active_import_wh", "active_export_wh",
               "power_up", "clock_set", "interval_changed")


@dataclass(frozen=True)
class ProfileRecord:
    """One interval of the load profile.

    A record with no flag set covers one whole interval of the configured length,
    ending at :attr:`end`.
    """

    number: int                         #: counted from 0 at the meter's power-up (wraps at 2**32)
    start: "datetime.datetime | None"   #: UTC: the previous record's end, when that is known
    end: datetime.datetime              #: UTC, aware: where the interval ended
    active_import_wh: int               #: +A energy in the interval, Wh
    active_export_wh: int               #: -A energy in the interval, Wh
    power_up: bool                      #: began at power-up or reset: a partial interval
    clock_set: bool                     #: the meter's clock was set during the interval
    interval_changed: bool              #: the interval length changed during the interval

    @property
    def complete(self) -> bool:
        """A whole interval of the configured length (no flag set)."""
        return not (self.power_up or self.clock_set or self.interval_changed)

    def to_json(self) -> dict:
        """The record as JSON-ready values (times as ISO 8601 UTC, or ``None``)."""
        return {
            "number": self.number,
            "start": None if self.start is None else self.start.isoformat(),
            "end": self.end.isoformat(),
            "active_import_wh": self.active_import_wh,
            "active_export_wh": self.active_export_wh,
            "power_up": self.power_up,
            "clock_set": self.clock_set,
            "interval_changed": self.interval_changed,
        }


def _utc(seconds: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)


def read_profile(meter: Meter, *,
                 progress: "Callable[[int, int], None] | None" = None) -> list[ProfileRecord]:
    """Every record in the meter's load-profile ring, oldest first (see
    :func:`~refmeter.soft.ring.read_ring`, which this reads it with)."""
    records: list[ProfileRecord] = []
    for number, raw in read_ring(meter, "profile", what="load profile", progress=progress):
        records.append(_record(number, raw, records[-1] if records else None))
    return records


def _record(number: int, raw: RegisterValue, previous: "ProfileRecord | None") -> ProfileRecord:
    # Intervals follow one another, so the previous record's end is this one's start,
    # unless the meter restarted or its clock was set in between.
    contiguous = (previous is not None and (previous.number + 1) % NUMBER_MODULUS == number
                  and not raw["power_up"] and not raw["clock_set"])
    return ProfileRecord(
        number=number,
        start=previous.end if contiguous else None,
        end=_utc(raw["end_seconds"]),
        active_import_wh=raw["active_import_wh"],
        active_export_wh=raw["active_export_wh"],
        power_up=bool(raw["power_up"]),
        clock_set=bool(raw["clock_set"]),
        interval_changed=bool(raw["interval_changed"]),
    )
