"""The voltage events the meter logs: sags, swells and interruptions, with UTC times.

Each phase's line monitor decides, every half-cycle, whether an event starts or
ends (docs/metrology.md, "Voltage events"); the gateware's event log keeps each
edge in a ring of ``voltage_event_capacity`` records, host or no host, read like
the load profile (:mod:`.ring`).
"""

import datetime
import math
from dataclasses import dataclass
from typing import Callable

from refmeter.gateware.metrology.core import PHASE_NAMES
from refmeter.gateware.metrology.line import EventKind, MEAN_SQUARE_UNIT_LOG2

from .device import Meter
from .ring import read_ring

__all__ = ["VoltageEvent", "read_events", "half_cycle_voltage"]


def half_cycle_voltage(mean_square: int, volts_per_code: float) -> float:
    """Urms(1/2), V, from a ``mean_square`` (2**30 codes²) the gateware reports."""
    return math.sqrt(mean_square << MEAN_SQUARE_UNIT_LOG2) * volts_per_code


@dataclass(frozen=True)
class VoltageEvent:
    """One edge of a voltage event."""

    number: int                   #: counted from 0 at the meter's power-up (wraps at 2**32)
    time: datetime.datetime       #: UTC, aware, to the millisecond: when the edge was decided
    phase: str                    #: ``l1`` ...
    kind: str                     #: ``sag``, ``swell`` or ``interruption``
    end: bool                     #: False: the event started; True: it ended
    extreme_voltage_v: float      #: lowest (sag, interruption) or highest (swell) Urms(1/2) so far

    def to_json(self) -> dict:
        return {"number": self.number, "time": self.time.isoformat(timespec="milliseconds"),
                "phase": self.phase, "kind": self.kind, "end": self.end,
                "extreme_voltage_v": self.extreme_voltage_v}


def read_events(meter: Meter, *,
                progress: "Callable[[int, int], None] | None" = None) -> list[VoltageEvent]:
    """Every edge in the meter's voltage event log, oldest first."""
    records = read_ring(meter, "voltage_event", what="voltage event log", progress=progress)
    scales = {}
    events = []
    for number, raw in records:
        phase = PHASE_NAMES[raw["phase"]]
        if phase not in scales:
            scales[phase] = int(meter.read(f"voltage_scale_{phase}")) * 1e-12
        seconds = raw["seconds"] + raw["millisecond"] / 1000
        events.append(VoltageEvent(
            number=number,
            time=datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc),
            phase=phase,
            kind=EventKind(raw["kind"]).name.lower(),
            end=bool(raw["end"]),
            extreme_voltage_v=half_cycle_voltage(raw["value"], scales[phase]),
        ))
    return events
