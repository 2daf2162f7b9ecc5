"""The host's register map: the gateware declaration, plus wire encoding.

Nothing here restates an address or a field: both come from
:func:`refmeter.gateware.meter.meter_register_map`.
"""

import functools
from collections.abc import Iterator, Mapping

from refmeter.gateware.meter import meter_register_map
from refmeter.gateware.registers import Field, Guard, Register, RegisterMap

__all__ = ["METER_REGISTERS", "register_map", "RegisterValue", "decode", "encode",
           "registers_markdown"]


@functools.cache
def register_map(phases: int = 1) -> RegisterMap:
    """The register map of a ``phases``-phase meter with the gateware this host
    package was installed with."""
    return meter_register_map(phases)


#: The single-phase meter's map. A meter's own map depends on its ``phases``
#: register, at the same address in every map (see :class:`~.device.Meter`).
METER_REGISTERS: RegisterMap = register_map(1)


class RegisterValue(Mapping[str, int]):
    """A multi-field register value: a read-only mapping of field name to value."""

    def __init__(self, register: Register, raw: int):
        self.register = register
        self.raw = raw
        self._fields = {field.name: _field_value(field, raw >> offset)
                        for field, offset in register.field_offsets()}

    def __getitem__(self, name: str) -> int:
        return self._fields[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value}" for name, value in self._fields.items())
        return f"{self.register.name}({fields})"


def _field_value(field: Field, bits: int) -> int:
    value = bits & ((1 << field.width) - 1)
    if field.signed and value >> (field.width - 1):
        value -= 1 << field.width
    return value


def decode(register: Register, data: bytes) -> "int | RegisterValue":
    """A register's wire bytes as a number (one field) or a :class:`RegisterValue`."""
    if len(data) != register.size:
        raise ValueError(f"{register.name} is {register.size} bytes, the meter sent {len(data)}")
    raw = int.from_bytes(data, "big")
    return _field_value(register.fields[0], raw) if register.is_number else RegisterValue(register, raw)


def encode(register: Register, value: "int | Mapping[str, int]") -> bytes:
    """Wire bytes for writing ``value`` (a number, or field values by name)."""
    if isinstance(value, Mapping):
        unknown = set(value) - {field.name for field in register.fields}
        if unknown:
            raise ValueError(f"{register.name} has no field {', '.join(sorted(unknown))}")
        fields = {field.name: value.get(field.name, field.init) for field in register.fields}
    elif register.is_number:
        fields = {register.fields[0].name: value}
    else:
        raise ValueError(f"{register.name} has fields: write them by name")
    raw = 0
    for field, offset in register.field_offsets():
        field_value = fields[field.name]
        low, high = ((-(1 << (field.width - 1)), 1 << (field.width - 1)) if field.signed
                     else (0, 1 << field.width))
        if not low <= field_value < high:
            where = register.name if register.is_number else f"{register.name}.{field.name}"
            kind = "signed " if field.signed else ""
            raise ValueError(f"{field_value} does not fit {where} ({kind}{field.width} bits)")
        raw |= (field_value & ((1 << field.width) - 1)) << offset
    return raw.to_bytes(register.size, "big")


def _guard_text(register: Register) -> str:
    if register.guard is Guard.OPEN:
        return ""
    if not register.authorities:
        return register.guard.value
    names = ", ".join(sorted(authority.slot_name for authority in register.authorities))
    return f"{register.guard.value}: {names}"


def registers_markdown(phases: int = 3) -> str:
    """The register reference of a ``phases``-phase meter, as in ``docs/registers.md``."""
    registers = register_map(phases)
    fingerprints = ", ".join(f"{count} phase{'s' if count > 1 else ''} "
                             f"`{register_map(count).fingerprint():#010x}`" for count in (1, 3))
    lines = [
        "# Register map",
        "",
        f"Generated from the gateware declaration by `refmeter regs --markdown --phases "
        f"{phases}`; do not edit.",
        f"This is the map of a {phases}-phase meter. Every register has the same address in "
        f"every meter; a single-phase meter has no registers of phases l2 and l3 and of the "
        f"neutral (`_n`). The `phases` register says which map a meter has.",
        f"Register map fingerprints: {fingerprints}.",
        "Values are big-endian on the wire; fields are listed least significant first.",
        "",
        "Guards (docs/security.md): *seal*, written only with the seal open; "
        "*authenticated*, only by a verified command from the authorities listed; "
        "*provisioning*, with the seal open or by such a command.",
        "",
        "| address | register | access | guard | bytes | reset | description |",
        "|---|---|---|---|---|---|---|",
    ]
    for address, register in registers:
        lines.append(f"| `{address:#06x}` | `{register.name}` | {register.access.value} | "
                     f"{_guard_text(register)} | {register.size} | `{register.init:#x}` | "
                     f"{register.description} |")
    for address, register in registers:
        if register.is_number:
            continue
        lines += ["", f"## `{register.name}` fields", "",
                  "| bits | field | reset | description |", "|---|---|---|---|"]
        for field, offset in register.field_offsets():
            bits = f"{offset + field.width - 1}:{offset}" if field.width > 1 else f"{offset}"
            lines.append(f"| {bits} | `{field.name}` | `{field.init:#x}` | {field.description} |")
    return "\n".join(lines) + "\n"
