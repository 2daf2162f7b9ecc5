"""Reading a ring of records the gateware keeps in block RAM (the load profile, the
voltage event log), whatever the ring holds.

A ring named ``name`` has four registers: ``{name}_capacity``, ``{name}_head`` (the
number of the next record; records are numbered from 0 at power-up and record
``n`` is in slot ``n mod capacity``), ``{name}_select`` and ``{name}_record``. To
read record ``n`` the host writes ``n`` to the select register and reads the record
register (one read, so the record is whole). It was record ``n``, not a newer one
that has since taken its slot, if the head read afterwards is at most
``n + capacity``.
"""

from typing import Callable

from refmeter.gateware.metrology.ring import RING_REGISTERS

from .device import Meter
from .errors import MeterError
from .registers import RegisterValue

__all__ = ["read_ring", "CHECK_EVERY", "NUMBER_MODULUS"]

#: Records read between reads of the head that confirm them (6 % more requests).
CHECK_EVERY = 16
#: Record numbers wrap like the head register.
NUMBER_MODULUS = 1 << 32


def read_ring(meter: Meter, name: str, *, what: str,
              progress: "Callable[[int, int], None] | None" = None) -> list[tuple[int, RegisterValue]]:
    """(number, record) of every record in ring ``name``, oldest first.

    Reads the head, then each record it implies (two requests per record), reading
    the head again after every :data:`CHECK_EVERY` records: a record whose slot a
    newer record had taken by then is left out (so the oldest may be missing when
    the meter writes faster than the host reads). Records written after the first
    read of the head are left for the next call. After the numbers wrap (2**32
    records) only the records since the wrap are read.

    ``progress(done, total)`` is called after each record. Raises
    :class:`~refmeter.soft.errors.MeterError` if this host's register map has no
    such ring (``what`` names it in the message).
    """
    for register in RING_REGISTERS:
        try:
            meter.register_map.address_of(f"{name}_{register}")
        except KeyError:
            raise MeterError(f"this host's register map has no {name}_{register} register: "
                             f"the meter's gateware has no {what}") from None
    capacity = int(meter.read(f"{name}_capacity"))
    head = int(meter.read(f"{name}_head"))
    total = min(head, capacity)
    records: list[tuple[int, RegisterValue]] = []
    unchecked: list[tuple[int, RegisterValue]] = []
    for index in range(total):
        number = (head - total + index) % NUMBER_MODULUS
        meter.write(f"{name}_select", number)
        raw = meter.read(f"{name}_record")
        assert isinstance(raw, RegisterValue)
        unchecked.append((number, raw))
        if len(unchecked) == CHECK_EVERY or index == total - 1:
            # Record n's slot is taken by record n + capacity, which makes the head
            # n + capacity + 1: a head of at most n + capacity, read after the
            # record, proves it was still record n when it was read.
            head_now = int(meter.read(f"{name}_head"))
            records += [(checked_number, checked) for checked_number, checked in unchecked
                        if (head_now - checked_number) % NUMBER_MODULUS <= capacity]
            unchecked.clear()
        if progress is not None:
            progress(index + 1, total)
    return records
