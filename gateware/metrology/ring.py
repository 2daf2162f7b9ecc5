"""What every ring of records in block RAM shows a host: its four registers, and
the record register that holds still while the ring is written.

A ring named ``name`` (``profile``, ``voltage_event``) has ``{name}_capacity``,
``{name}_head`` (the number of the next record; records are numbered from 0 at
power-up and record ``n`` is in slot ``n mod capacity``), ``{name}_select`` and
``{name}_record``, which shows the record in the slot of the select register. The
host reads every ring the same way (``refmeter.soft.ring``), by these names.
"""

from amaranth.hdl import Module, Signal, Value

from ..registers import Access, Field, Register

__all__ = ["RING_REGISTERS", "ring_registers", "show_selected_record"]

#: The suffixes of a ring's registers, in the order :func:`ring_registers` gives them.
RING_REGISTERS = ("capacity", "head", "select", "record")


def ring_registers(name: str, what: str, record_fields: tuple[Field, ...]) -> tuple[Register, ...]:
    """The registers of ring ``name`` of ``what`` records (words for descriptions,
    e.g. ``load-profile``) whose record register has ``record_fields``."""
    return (
        Register.number(f"{name}_capacity", Access.RO, 32, f"records the {what} ring holds"),
        Register.number(f"{name}_head", Access.RO, 32,
                        f"{what} records written since power-up (wraps); the ring holds "
                        f"records head - capacity to head - 1"),
        Register.number(f"{name}_select", Access.RW, 32,
                        f"number of the {what} record that {name}_record shows"),
        Register(f"{name}_record", Access.RO, record_fields,
                 f"the {what} record in the slot of {name}_select; it is record {name}_select "
                 f"if head - capacity <= {name}_select < head afterwards"),
    )


def show_selected_record(m: Module, component, name: str, *, read, head: Signal,
                         capacity: int, hold: Value) -> None:
    """Drive ring ``name``'s registers on ``component``: the capacity, the ``head``,
    and the record in the selected slot from the asynchronous ``read`` port, into the
    record register (which Yosys merges into the block RAM's read port) unless
    ``hold``. Holding while the slot shown may be written means a read never meets a
    write, so the RAM's read-during-write behaviour does not matter."""
    index_width = (capacity - 1).bit_length()
    m.d.comb += read.addr.eq(getattr(component, f"{name}_select").value[:index_width])
    with m.If(~hold):
        m.d.sync += getattr(component, f"{name}_record").eq(read.data)
    m.d.comb += [
        getattr(component, f"{name}_head").value.eq(head),
        getattr(component, f"{name}_capacity").value.eq(capacity),
    ]
