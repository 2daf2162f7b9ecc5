"""Registers, declared once: the gateware builds its bus decoder from these
declarations and the host builds its register map from the same objects.

A :class:`Register` names its fields (least significant first), its access and its
description. A :class:`RegisterMap` gives each register a 16-bit word address.
:class:`RegisterBank` turns a map into logic: a :class:`RegisterBus` target that
decodes addresses, enforces access, guards and length, holds the storage of ``rw``
registers, passes ``wo`` writes to the components that take them and reads ``ro``
registers from the components that own them, from flip-flops or, for a
:class:`RegisterStore`, from block RAM.

Register values travel on the wire big-endian, in as many whole bytes as the
register is wide.
"""

import enum
import hashlib
import json
from dataclasses import dataclass
from typing import Iterator, Mapping

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import ReadPort
from amaranth.lib.wiring import In, Out

from .hostlink.protocol import MAX_PAYLOAD, Status
from .security.authority import Authority

__all__ = ["Access", "Guard", "Field", "Register", "RegisterMap", "RegisterBus", "RegisterStore",
           "RegisterBank", "register_ports", "connect_registers"]


class Access(enum.Enum):
    """What the host may do with a register."""

    RW = "rw"  #: host reads and writes; the bank holds the value
    RO = "ro"  #: host reads; a gateware component drives the value
    WO = "wo"  #: host writes, the owning component takes the value; reading is refused

    @property
    def readable(self) -> bool:
        return self is not Access.WO

    @property
    def writable(self) -> bool:
        return self is not Access.RO


class Guard(enum.Enum):
    """Which writes a writable register takes. A *plain* write comes from the host
    link as it is; an *authenticated* one from the security unit, once it has
    verified a command's tag under an authority's key (docs/security.md)."""

    OPEN = "open"                   #: any write
    SEAL = "seal"                   #: only while the seal is open (metrology settings)
    AUTHENTICATED = "authenticated"  #: only authenticated, from a listed authority
    #: only authenticated, from a listed authority, while the seal is open (calibration)
    SEAL_AUTHENTICATED = "seal+authenticated"
    #: plain writes while the seal is open (provisioning), or authenticated ones (key slots)
    PROVISIONING = "provisioning"

    @property
    def authenticated(self) -> bool:
        """Whether authenticated writes reach the register, so authorities are named."""
        return self in (Guard.AUTHENTICATED, Guard.SEAL_AUTHENTICATED, Guard.PROVISIONING)

    @property
    def sealed(self) -> bool:
        """Whether every write needs the seal open; the meter counts such writes."""
        return self in (Guard.SEAL, Guard.SEAL_AUTHENTICATED)


@dataclass(frozen=True)
class Field:
    """A named bit field of a register.

    ``init`` is the value after reset (``rw`` and ``wo`` registers only); a
    ``signed`` field is two's complement.
    """

    name: str
    width: int
    description: str
    init: int = 0
    signed: bool = False

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"Field name must be an identifier, not {self.name!r}")
        if self.width < 1:
            raise ValueError(f"Field {self.name!r} must be at least 1 bit wide, not {self.width}")
        low, high = ((-(1 << (self.width - 1)), 1 << (self.width - 1)) if self.signed
                     else (0, 1 << self.width))
        if not low <= self.init < high:
            raise ValueError(f"Field {self.name!r} init {self.init} does not fit in {self.width} bits")

    @property
    def shape(self):
        return signed(self.width) if self.signed else unsigned(self.width)


@dataclass(frozen=True)
class Register:
    """A register: fields listed least significant first, padded to whole bytes.

    A register with a single field is a plain number to the host; one with several
    fields is a record of them. ``guard`` says which writes it takes, and
    ``authorities`` which authorities' authenticated commands may write it.
    """

    name: str
    access: Access
    fields: tuple[Field, ...]
    description: str
    guard: Guard = Guard.OPEN
    authorities: frozenset[Authority] = frozenset()

    def __post_init__(self) -> None:
        if self.guard is not Guard.OPEN and not self.access.writable:
            raise ValueError(f"Register {self.name!r} is read-only, so it cannot be guarded")
        if self.guard.authenticated != bool(self.authorities):
            raise ValueError(f"Register {self.name!r}: name the authorities that may write it "
                             f"if and only if its guard takes authenticated writes")
        if self.access is Access.WO and any(field.init for field in self.fields):
            raise ValueError(f"Register {self.name!r} is write-only: the bank holds no value, "
                             f"so it has no reset value")
        if not self.name.isidentifier():
            raise ValueError(f"Register name must be an identifier, not {self.name!r}")
        if not self.fields:
            raise ValueError(f"Register {self.name!r} has no fields")
        names = [field.name for field in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"Register {self.name!r} has duplicate field names: {names}")

    @classmethod
    def number(cls, name: str, access: Access, width: int, description: str, *,
               init: int = 0, signed: bool = False, guard: Guard = Guard.OPEN,
               authorities: "frozenset[Authority] | set[Authority]" = frozenset()) -> "Register":
        """A register holding one number of ``width`` bits."""
        return cls(name, access, (Field("value", width, description, init, signed),),
                   description, guard, frozenset(authorities))

    @property
    def sealed(self) -> bool:
        """Written only while the seal is open (calibration): the meter counts its writes."""
        return self.guard.sealed

    @property
    def is_number(self) -> bool:
        return len(self.fields) == 1

    @property
    def size(self) -> int:
        """Width on the wire, in bytes."""
        return (sum(field.width for field in self.fields) + 7) // 8

    @property
    def layout(self) -> data.StructLayout:
        """The register's fields as an Amaranth layout, padded to :attr:`size` bytes."""
        members = {field.name: field.shape for field in self.fields}
        padding = self.size * 8 - sum(field.width for field in self.fields)
        if padding:
            members["_padding"] = padding
        return data.StructLayout(members)

    def field_offsets(self) -> Iterator[tuple[Field, int]]:
        offset = 0
        for field in self.fields:
            yield field, offset
            offset += field.width

    @property
    def field_inits(self) -> dict[str, int]:
        return {field.name: field.init for field in self.fields}

    @property
    def init(self) -> int:
        """The reset value as the wire carries it (signed fields in two's complement)."""
        return sum((field.init & ((1 << field.width) - 1)) << offset
                   for field, offset in self.field_offsets())


class RegisterMap:
    """Registers at 16-bit word addresses; each register takes one address."""

    ADDRESS_WIDTH = 16

    def __init__(self) -> None:
        self._by_address: dict[int, Register] = {}
        self._by_name: dict[str, int] = {}

    def add_block(self, base: int, registers: "tuple[Register, ...] | list[Register]") -> None:
        """Place ``registers`` at consecutive addresses from ``base``."""
        for offset, register in enumerate(registers):
            self.add(base + offset, register)

    def add(self, address: int, register: Register) -> None:
        if not 0 <= address < 1 << self.ADDRESS_WIDTH:
            raise ValueError(f"Address {address:#x} of {register.name!r} is outside the 16-bit space")
        if address in self._by_address:
            raise ValueError(f"Address {address:#06x} of {register.name!r} is already taken by "
                             f"{self._by_address[address].name!r}")
        if register.name in self._by_name:
            raise ValueError(f"Register name {register.name!r} is declared twice")
        self._by_address[address] = register
        self._by_name[register.name] = address

    def __iter__(self) -> Iterator[tuple[int, Register]]:
        return iter(sorted(self._by_address.items()))

    def __len__(self) -> int:
        return len(self._by_address)

    def address_of(self, name: str) -> int:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"No register named {name!r}; known: {', '.join(self._by_name)}") from None

    def __getitem__(self, name: str) -> Register:
        return self._by_address[self.address_of(name)]

    @property
    def data_width(self) -> int:
        """Bus data width in bits: the widest register."""
        return 8 * max(register.size for _, register in self)

    def describe(self) -> list[dict]:
        """A JSON-ready description, the form the host and the docs are generated from."""
        return [{
            "name": register.name,
            "address": address,
            "access": register.access.value,
            "guard": register.guard.value,
            "authorities": sorted(authority.slot_name for authority in register.authorities),
            "size": register.size,
            "init": register.init,
            "description": register.description,
            "fields": [{"name": field.name, "offset": offset, "width": field.width,
                        "signed": field.signed, "init": field.init,
                        "description": field.description}
                       for field, offset in register.field_offsets()],
        } for address, register in self]

    def fingerprint(self) -> int:
        """A 32-bit hash of everything a host depends on (not the descriptions).

        The gateware reports it in the identity block, so a host can tell that a
        bitstream was built from a different register map than its own.
        """
        shape = [{key: value for key, value in entry.items() if key != "description"}
                 | {"fields": [{k: v for k, v in field.items() if k != "description"}
                               for field in entry["fields"]]}
                 for entry in self.describe()]
        digest = hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).digest()
        return int.from_bytes(digest[:4], "big")


class RegisterBus(wiring.Signature):
    """One register access per strobe, answered when the target acknowledges it.

    The initiator (the host-link bridge) drives ``address``, ``write``, ``length``
    (payload bytes it received, up to ``MAX_PAYLOAD`` whatever the data width, so
    the target sees an over-long payload as such) and ``w_data`` (right-aligned), and
    raises ``strobe``; it holds them all until the target raises ``ack``. In the
    cycle of ``ack`` the target answers with ``status``, and for a read ``r_length``
    (bytes to send). The value read comes on ``r_data`` in 16-bit lanes (lane *k* is
    bits 16k to 16k + 15): in every cycle of the strobe, the initiator takes lane *k*
    of ``r_data`` if bit *k* of ``r_lanes`` is high, and starts a read with a value
    of 0, so a lane never marked reads as 0. A register the target holds in
    flip-flops comes whole in the cycle of ``ack``; one it keeps in block RAM
    (:class:`RegisterStore`) a word a cycle before it, so that neither side needs a
    buffer of its own for the value. A write takes effect only with an ``ack`` whose
    status is ``OK``. Most accesses are acknowledged in the strobe's first cycle;
    reads from block RAM and writes a component copies a word at a time take a few
    more. ``authenticated`` is raised, with the ``authority`` whose key
    verified the command, only for a write the security unit asks the host-link
    bridge to make (:class:`~refmeter.gateware.hostlink.bridge.FrameBridge`'s
    ``local`` port); a host's own frames never raise it.
    """

    def __init__(self, *, data_width: int):
        self._data_width = data_width
        super().__init__({
            "address":  Out(RegisterMap.ADDRESS_WIDTH),
            "write":    Out(1),
            "length":   Out(range(MAX_PAYLOAD + 1)),
            "w_data":   Out(data_width),
            "strobe":   Out(1),
            "authenticated": Out(1),
            "authority": Out(range(len(Authority))),
            "ack":      In(1),
            "status":   In(Status),
            "r_data":   In(data_width),
            "r_length": In(range(data_width // 8 + 1)),
            "r_lanes":  In(-(-data_width // RegisterStore.WORD_WIDTH)),
        })

    @property
    def data_width(self) -> int:
        return self._data_width


@dataclass(frozen=True)
class RegisterStore:
    """``ro`` registers that a component keeps in block RAM, in 16-bit words.

    Flip-flops that hold a register's value are cheap where it is computed but cost
    the bank a multiplexer input per bit; a component that computes its results a
    word at a time (the metrology's microprogram) keeps them in a RAM instead, and
    the bank reads them through a :class:`~amaranth.lib.memory.ReadPort` (data a
    cycle after the address) of :attr:`signature`.

    ``addresses`` gives the word address of each register by name. A register's
    value is in consecutive words from there, least significant first,
    ``ceil(width / 16)`` of them; bits above the width are ignored.

    The component must update a register by writing all its words in consecutive
    cycles, lowest first, and the read port must be transparent (a word read as it is
    written reads the new value). The bank reads the words in consecutive cycles,
    lowest first. Then word ``j`` of a read started in cycle ``t`` is new if the
    update started in a cycle ``s <= t``, whatever ``j``: a read sees all of one
    update and none of a later one, so a value is never torn.
    """

    WORD_WIDTH = 16

    addresses: Mapping[str, int]
    address_width: int

    @property
    def signature(self) -> ReadPort.Signature:
        return ReadPort.Signature(addr_width=self.address_width, shape=self.WORD_WIDTH)

    @classmethod
    def words(cls, register: Register) -> int:
        """Words of ``register``'s value."""
        return -(-sum(field.width for field in register.fields) // cls.WORD_WIDTH)


class WriteOnlyPort(wiring.Signature):
    """What a component sees of a ``wo`` register: ``data`` (the bus's write data,
    whatever the access), to be taken while ``written`` is high. The bank keeps no copy, so a key or a command written through it stays
    only where its component puts it.

    ``written`` rises with an accepted write and stays high, ``data`` unchanged (the
    initiator holds its access), until the component raises ``ready``; the bank
    acknowledges the write in that cycle. A component that takes a value at once
    leaves ``ready`` at its initial 1 and sees ``written`` for one cycle; one that
    copies a wide value into block RAM a word at a time lowers it until the last
    word, so the value never needs a register of its own."""

    def __init__(self, layout: data.StructLayout):
        super().__init__({"data": Out(layout), "written": Out(1), "ready": In(1, init=1)})


class RegisterBank(wiring.Component):
    """Decoder and storage for a :class:`RegisterMap`.

    Besides ``bus``, the bank has one port per register, named after it:
    ``ro`` registers are inputs (the owning component drives the value), ``rw``
    registers are outputs holding the stored value, ``wo`` registers are
    :class:`WriteOnlyPort` outputs.

    Rules, checked in this order: an unknown address is ``BAD_ADDRESS``; a write to
    an ``ro`` register is ``READ_ONLY``; a read of a ``wo`` register is
    ``WRITE_ONLY``; then the register's :class:`Guard`: a write to a ``SEAL`` or
    ``SEAL_AUTHENTICATED`` register, or a plain write to a ``PROVISIONING`` one,
    while ``seal_open`` is low is ``SEALED``; a plain write to an ``AUTHENTICATED``
    or ``SEAL_AUTHENTICATED`` register is ``UNAUTHENTICATED``; an authenticated
    write from an authority the register does not list is ``FORBIDDEN``; a write
    whose payload is not exactly the register's size, or a read that carries a
    payload, is ``BAD_LENGTH``.

    A map with guarded registers gives the bank ``seal_open`` (in); one with
    sealed registers also ``sealed_write`` (out), which pulses with every write
    to one of them.

    ``stores`` names the :class:`RegisterStore` of each component that keeps
    registers in block RAM; the bank has a read port of the store's name for each
    (to connect to the component's) and no port for the registers in it. A read of
    such a register is acknowledged ``words + 1`` cycles after its strobe rises, a
    ``wo`` write when its component is ready (:class:`WriteOnlyPort`), every other
    access in the strobe's cycle.
    """

    def __init__(self, register_map: RegisterMap, *, stores: Mapping[str, RegisterStore] = {}):
        self._register_map = register_map
        self._stores = dict(stores)
        self._stored = {}  # register name: (store name, its word address)
        members = {"bus": In(RegisterBus(data_width=register_map.data_width))}
        if any(register.guard.sealed or register.guard is Guard.PROVISIONING
               for _, register in register_map):
            members["seal_open"] = In(1)
        if any(register.sealed for _, register in register_map):
            members["sealed_write"] = Out(1)
        for store_name, store in self._stores.items():
            members[store_name] = In(store.signature)
            for name, address in store.addresses.items():
                if register_map[name].access is not Access.RO:
                    raise ValueError(f"Register {name!r} is not read-only, so it cannot be "
                                     f"kept in a store")
                if name in self._stored:
                    raise ValueError(f"Register {name!r} is in stores {self._stored[name][0]!r} "
                                     f"and {store_name!r}")
                if address + RegisterStore.words(register_map[name]) > 1 << store.address_width:
                    raise ValueError(f"Register {name!r} does not fit store {store_name!r}")
                self._stored[name] = (store_name, address)
        for _, register in register_map:
            if register.name in members:
                raise ValueError(f"A register may not be named {register.name!r}: "
                                 f"the bank has a port of that name")
            if register.name in self._stored:
                continue
            if register.access is Access.RO:
                members[register.name] = In(register.layout)
            elif register.access is Access.RW:
                members[register.name] = Out(register.layout, init=register.field_inits)
            else:
                members[register.name] = Out(WriteOnlyPort(register.layout))
        super().__init__(members)

    @property
    def register_map(self) -> RegisterMap:
        return self._register_map

    def elaborate(self, platform):
        m = Module()
        bus = self.bus

        if "sealed_write" in self.signature.members:
            m.d.sync += self.sealed_write.eq(0)

        # A read from a store: its words are addressed in consecutive cycles from the
        # strobe's first, lowest first, and each goes to the initiator on its lane of
        # ``r_data`` the cycle it comes; the ack follows the last word.
        stored_read = Signal()  # the access is a read of a stored register, status OK
        max_words = max((RegisterStore.words(self._register_map[name]) for name in self._stored),
                        default=0)
        store_index = Signal(range(max(len(self._stores), 1)))
        word_address = Signal(max((store.address_width for store in self._stores.values()),
                                  default=0))
        words = Signal(range(max_words + 1))
        top_mask = Signal(RegisterStore.WORD_WIDTH)  # the bits of the last word in the value
        step = Signal(range(max_words + 2))  # cycles since the strobe

        write_waits = Signal()  # an accepted wo write waits for its component's ``ready``
        # Every wo port shows the bus's data, decoded or not: only ``written`` says a
        # write is for it, and the ports share the wires rather than a gate a bit each.
        for _, register in self._register_map:
            if register.access is Access.WO:
                width = sum(field.width for field in register.fields)
                m.d.comb += getattr(self, register.name).data.as_value()[:width].eq(
                    bus.w_data[:width])

        with m.Switch(bus.address):
            for address, register in self._register_map:
                with m.Case(address):
                    if register.name in self._stored:
                        store_name, word_address_value = self._stored[register.name]
                        count = RegisterStore.words(register)
                        top_bits = (sum(field.width for field in register.fields)
                                    - (count - 1) * RegisterStore.WORD_WIDTH)
                        m.d.comb += [
                            stored_read.eq(~bus.write & (bus.length == 0)),
                            store_index.eq(list(self._stores).index(store_name)),
                            word_address.eq(word_address_value),
                            words.eq(count),
                            top_mask.eq((1 << top_bits) - 1),
                        ]
                    elif register.access.readable:
                        m.d.comb += bus.r_data.eq(getattr(self, register.name).as_value())
                    with m.If(bus.write):
                        if not register.access.writable:
                            m.d.comb += bus.status.eq(Status.READ_ONLY)
                        else:
                            refusal = self._guard_refusal(register, bus)
                            with m.If(refusal.any()):
                                m.d.comb += bus.status.eq(refusal.status)
                            with m.Elif(bus.length != register.size):
                                m.d.comb += bus.status.eq(Status.BAD_LENGTH)
                            with m.Else():
                                m.d.comb += bus.status.eq(Status.OK)
                                self._store(m, register, getattr(self, register.name), bus,
                                            write_waits)
                    with m.Else():
                        if not register.access.readable:
                            m.d.comb += bus.status.eq(Status.WRITE_ONLY)
                        else:
                            with m.If(bus.length != 0):
                                m.d.comb += bus.status.eq(Status.BAD_LENGTH)
                            with m.Else():
                                m.d.comb += [
                                    bus.status.eq(Status.OK),
                                    bus.r_length.eq(register.size),
                                ]
            with m.Default():
                m.d.comb += bus.status.eq(Status.BAD_ADDRESS)

        # A value from flip-flops comes whole with the ack; no lane is marked while a
        # wo write waits, as its component may still be copying ``w_data``, which the
        # bridge keeps in the register the lanes write.
        m.d.comb += [bus.ack.eq(bus.strobe & ~write_waits),
                     bus.r_lanes.eq(Mux(write_waits, 0, -1))]
        if self._stores:
            data = 0
            for index, store_name in enumerate(self._stores):
                store = getattr(self, store_name)
                m.d.comb += store.addr.eq(word_address + step)
                data = store.data if index == 0 else Mux(store_index == index, store.data, data)
            with m.If(bus.strobe & stored_read):
                word = data & Mux(step == words, top_mask, 0xFFFF)
                arrived = (step - 1)[:len(step)]  # the word whose data came this cycle
                m.d.comb += [
                    bus.ack.eq(step == words + 1),
                    bus.r_data.eq(Cat(word for _ in range(len(bus.r_lanes)))),
                    bus.r_lanes.eq(Mux((step != 0) & (step <= words), 1 << arrived, 0)),
                ]
                m.d.sync += step.eq(Mux(bus.ack, 0, step + 1))
        return m

    def _guard_refusal(self, register: Register, bus) -> "_Refusal":
        """Why ``register``'s guard refuses the write on ``bus``, if it does."""
        plain = ~bus.authenticated
        permitted = Const(0)
        for authority in register.authorities:
            permitted |= bus.authority == authority
        guard = register.guard
        if guard is Guard.OPEN:
            return _Refusal()
        if guard is Guard.SEAL:
            return _Refusal((~self.seal_open, Status.SEALED))
        if guard is Guard.AUTHENTICATED:
            return _Refusal((plain, Status.UNAUTHENTICATED), (~permitted, Status.FORBIDDEN))
        if guard is Guard.SEAL_AUTHENTICATED:
            return _Refusal((~self.seal_open, Status.SEALED), (plain, Status.UNAUTHENTICATED),
                            (~permitted, Status.FORBIDDEN))
        return _Refusal((plain & ~self.seal_open, Status.SEALED),
                        (~plain & ~permitted, Status.FORBIDDEN))

    def _store(self, m: Module, register: Register, port, bus, write_waits) -> None:
        # Only the fields are stored: padding bits always read back as 0.
        width = sum(field.width for field in register.fields)
        value = bus.w_data[:width]
        if register.access is Access.WO:
            m.d.comb += [port.written.eq(bus.strobe), write_waits.eq(~port.ready)]
            return
        with m.If(bus.strobe):
            if register.sealed:
                m.d.sync += self.sealed_write.eq(1)
            m.d.sync += port.as_value()[:width].eq(value)


class _Refusal:
    """Conditions, first match wins, each with the status it answers."""

    def __init__(self, *conditions):
        self._conditions = conditions

    def any(self):
        result = Const(0)
        for condition, _ in self._conditions:
            result |= condition
        return result

    @property
    def status(self):
        status = Const(Status.OK, Status)
        for condition, answer in reversed(self._conditions):
            status = Mux(condition, answer, status)
        return status


def register_ports(registers) -> dict:
    """Signature members for a component that owns ``registers``, one port per
    register named after it: it drives its ``ro`` registers and sees the values of
    its ``rw`` and ``wo`` ones (see :func:`connect_registers`)."""
    members = {}
    for register in registers:
        if register.access is Access.RO:
            members[register.name] = Out(register.layout)
        elif register.access is Access.RW:
            members[register.name] = In(register.layout)
        else:
            members[register.name] = In(WriteOnlyPort(register.layout))
    return members


def connect_registers(m: Module, bank: RegisterBank, component, registers) -> None:
    """Wire each of ``registers`` between the bank and ``component``'s port of the
    same name (made by :func:`register_ports`)."""
    for register in registers:
        bank_port, component_port = getattr(bank, register.name), getattr(component, register.name)
        if register.access is Access.RO:
            m.d.comb += bank_port.eq(component_port)
        elif register.access is Access.RW:
            m.d.comb += component_port.eq(bank_port)
        else:
            wiring.connect(m, bank_port, component_port)
