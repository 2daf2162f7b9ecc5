"""The load profile the meter keeps: interval energy, read from the gateware's ring.

The gateware writes one record per interval (``profile_interval_s``, 1800 s by
default) into a ring of ``profile_capacity`` records, host or no host. Records are
numbered from 0 at the meter's power-up; ``profile_head`` is the number of the next
one, so the ring holds records ``head - capacity`` to ``head - 1``. To read record
``n`` the host writes ``n`` to ``profile_select`` and reads ``profile_record`` (one
register read, so the record is whole). It was record ``n``, not a newer record
that has since taken its slot, if ``profile_head`` read afterwards is at most
``n + capacity``. See ``docs/metrology.md`` (Load profile).
"""

import datetime
from dataclasses import dataclass
from typing import Callable

from .device import Meter
from .errors import MeterError
from .registers import RegisterValue

__all__ = ["ProfileRecord", "read_profile", "PROFILE_REGISTERS", "CSV_COLUMNS", "CHECK_EVERY"]

#: The registers a meter with a load profile has.
PROFILE_REGISTERS = ("profile_interval_s", "profile_capacity", "profile_head",
                     "profile_select", "profile_record")

#: Columns of :meth:`ProfileRecord.to_json`, in the order the CLI's CSV writes them.
CSV_COLUMNS = ("number", "start", "end", "active_import_wh", "active_export_wh",
               "power_up", "clock_set", "interval_changed")

_NUMBER_MODULUS = 1 << 32

#: Records read between reads of ``profile_head`` that confirm them (6 % more requests).
CHECK_EVERY = 16


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
    """Every record in the meter's load-profile ring, oldest first.

    Reads ``profile_head``, then each record it implies (two requests per record),
    reading ``profile_head`` again after every :data:`CHECK_EVERY` records: a record
    whose slot a newer record had taken by then is left out (so the oldest may be
    missing when the meter writes faster than the host reads). Records written after
    the first read of the head are left for the next call. Record numbers wrap at
    2**32 like ``profile_head`` (after 245,000 years of half-hour intervals); after
    that only the records since the wrap are read.

    ``progress(done, total)`` is called after each record. Raises
    :class:`~refmeter.soft.errors.MeterError` if this host's register map has no
    load profile.
    """
    for name in PROFILE_REGISTERS:
        try:
            meter.register_map.address_of(name)
        except KeyError:
            raise MeterError(f"this host's register map has no {name} register: the "
                             f"meter's gateware has no load profile") from None
    capacity = int(meter.read("profile_capacity"))
    head = int(meter.read("profile_head"))
    total = min(head, capacity)
    records: list[ProfileRecord] = []
    unchecked: list[tuple[int, RegisterValue]] = []
    for index in range(total):
        number = (head - total + index) % _NUMBER_MODULUS
        meter.write("profile_select", number)
        raw = meter.read("profile_record")
        assert isinstance(raw, RegisterValue)
        unchecked.append((number, raw))
        if len(unchecked) == CHECK_EVERY or index == total - 1:
            # Record n's slot is taken by record n + capacity, which makes the head
            # n + capacity + 1: a head of at most n + capacity, read after the
            # record, proves it was still record n when it was read.
            head_now = int(meter.read("profile_head"))
            for checked_number, checked in unchecked:
                if (head_now - checked_number) % _NUMBER_MODULUS <= capacity:
                    records.append(_record(checked_number, checked,
                                           records[-1] if records else None))
            unchecked.clear()
        if progress is not None:
            progress(index + 1, total)
    return records


def _record(number: int, raw: RegisterValue, previous: "ProfileRecord | None") -> ProfileRecord:
    # Intervals follow one another, so the previous record's end is this one's start,
    # unless the meter restarted or its clock was set in between.
    contiguous = (previous is not None and (previous.number + 1) % _NUMBER_MODULUS == number
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
