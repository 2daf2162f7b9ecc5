# amaranth: UnusedElaboratable=no
"""Register declarations, the register map and the register bank on its bus."""

import subprocess
import sys

import pytest
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib.memory import Memory

from gateware_helpers import DEMO_RO_VALUES, demo_register_map, run_simulation, ticks
from refmeter.gateware.hostlink.protocol import Status
from refmeter.gateware.registers import (Access, Field, Guard, Register, RegisterBank,
                                         RegisterMap, RegisterStore)
from refmeter.gateware.security.authority import Authority


@pytest.mark.parametrize("module", ["registers", "rtc", "hostlink.bridge", "meter"])
def test_gateware_module_imports_on_its_own(module, tmp_path):
    """Each gateware module can be the first one a fresh interpreter imports."""
    result = subprocess.run([sys.executable, "-c", f"import refmeter.gateware.{module}"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.strip().splitlines()[-1]


# --- Declarations ---------------------------------------------------------------------

@pytest.mark.parametrize("name", ["", "2phase", "active energy", "import-wh"])
def test_field_refuses_bad_name(name):
    """A field name that is not an identifier raises ValueError quoting it."""
    with pytest.raises(ValueError, match=repr(name)):
        Field(name, 8, "a field")


@pytest.mark.parametrize("width", [0, -1])
def test_field_refuses_empty_width(width):
    """A field narrower than one bit raises ValueError naming the field."""
    with pytest.raises(ValueError, match="'phase_count'"):
        Field("phase_count", width, "a field")


@pytest.mark.parametrize("width, init", [(1, 2), (8, 256), (8, -1), (12, 4096)])
def test_field_refuses_init_that_does_not_fit(width, init):
    """An ``init`` outside 0..2**width-1 raises ValueError naming the field."""
    with pytest.raises(ValueError, match="'cooldown_s'"):
        Field("cooldown_s", width, "a field", init=init)


@pytest.mark.parametrize("width, init", [(1, 1), (8, 255), (12, 0)])
def test_field_accepts_init_that_fits(width, init):
    """An ``init`` at the ends of the field's range is accepted."""
    assert Field("cooldown_s", width, "a field", init=init).init == init


@pytest.mark.parametrize("name", ["", "9lives", "relay control", "relay.control"])
def test_register_refuses_bad_name(name):
    """A register name that is not an identifier raises ValueError quoting it."""
    with pytest.raises(ValueError, match=repr(name)):
        Register.number(name, Access.RW, 8, "a register")


def test_register_refuses_no_fields():
    """A register without fields raises ValueError naming it."""
    with pytest.raises(ValueError, match="'relay_control'"):
        Register("relay_control", Access.RW, (), "a register")


def test_register_refuses_duplicate_field_names():
    """Two fields of one name raise ValueError naming the register."""
    with pytest.raises(ValueError, match="'relay_control'"):
        Register("relay_control", Access.RW, (
            Field("mode", 3, "a"), Field("closed", 1, "b"), Field("mode", 2, "c"),
        ), "a register")


@pytest.mark.parametrize("widths, size", [
    ((1,), 1), ((8,), 1), ((9,), 2), ((16,), 2), ((17,), 3), ((64,), 8),
    ((1, 3, 10), 2), ((16, 32), 6), ((4, 4), 1), ((4, 5), 2),
])
def test_register_size_is_whole_bytes(widths, size):
    """``size`` is the total field width in whole bytes, and the layout is padded to it."""
    register = Register("frame", Access.RW,
                        tuple(Field(f"f{index}", width, "") for index, width in enumerate(widths)),
                        "a register")
    assert register.size == size
    assert register.layout.size == 8 * size


def test_register_init_packs_fields_least_significant_first():
    """``init`` places each field's init at its offset, first field lowest."""
    register = Register("relay_control", Access.RW, (
        Field("closed", 1, "", init=1),
        Field("mode", 3, "", init=5),
        Field("cooldown_s", 10, "", init=300),
    ), "a register")
    assert register.init == 0b_0100101100_101_1
    assert register.field_inits == {"closed": 1, "mode": 5, "cooldown_s": 300}
    assert Register.number("scratch", Access.RW, 32, "", init=0xDEADBEEF).init == 0xDEADBEEF


# --- The map -------------------------------------------------------------------------

def test_map_refuses_taken_address():
    """A second register at an address raises ValueError naming both registers."""
    register_map = RegisterMap()
    register_map.add(0x0010, Register.number("scratch", Access.RW, 8, ""))
    with pytest.raises(ValueError, match=r"'tariff_rate'.*'scratch'"):
        register_map.add(0x0010, Register.number("tariff_rate", Access.RW, 8, ""))


def test_map_refuses_overlapping_block():
    """A block that runs into a placed register raises ValueError naming it."""
    register_map = RegisterMap()
    register_map.add(0x0012, Register.number("scratch", Access.RW, 8, ""))
    with pytest.raises(ValueError, match="'scratch'"):
        register_map.add_block(0x0010, [Register.number(name, Access.RO, 8, "")
                                        for name in ("a", "b", "c")])


def test_map_refuses_duplicate_name():
    """A register name used twice, at another address, raises ValueError naming it."""
    register_map = RegisterMap()
    register_map.add(0x0010, Register.number("scratch", Access.RW, 8, ""))
    with pytest.raises(ValueError, match="'scratch'"):
        register_map.add(0x0020, Register.number("scratch", Access.RO, 16, ""))


@pytest.mark.parametrize("address", [-1, 0x10000, 0x123456])
def test_map_refuses_address_outside_16_bits(address):
    """An address outside 0..0xFFFF raises ValueError naming the register."""
    with pytest.raises(ValueError, match="'scratch'"):
        RegisterMap().add(address, Register.number("scratch", Access.RW, 8, ""))


def test_map_accepts_both_ends_of_address_space():
    """Addresses 0 and 0xFFFF are usable."""
    register_map = RegisterMap()
    register_map.add(0xFFFF, Register.number("last", Access.RW, 8, ""))
    register_map.add(0x0000, Register.number("first", Access.RW, 8, ""))
    assert [address for address, _ in register_map] == [0x0000, 0xFFFF]


def test_map_lookup_and_order():
    """The map iterates by address, finds names (KeyError if unknown) and knows its data width."""
    register_map = demo_register_map()
    assert [register.name for _, register in register_map] == [
        "serial_number", "display_contrast", "tariff_rate", "unlock_key", "relay_control",
        "supply_status"]
    assert len(register_map) == 6
    assert register_map.address_of("relay_control") == 0x0011
    assert register_map["unlock_key"].access is Access.WO
    assert register_map.data_width == 32
    with pytest.raises(KeyError, match="no_such_register"):
        register_map.address_of("no_such_register")


def test_describe_lists_every_register_and_field():
    """``describe()`` lists each register and its fields with offsets, in address order."""
    register_map = RegisterMap()
    register_map.add(0x0101, Register("relay_control", Access.RW, (
        Field("closed", 1, "relay closed", init=1),
        Field("cooldown_s", 10, "hold-off, s", init=30),
    ), "load relay"))
    register_map.add(0x0003, Register.number("unlock_key", Access.WO, 16, "key"))
    assert register_map.describe() == [
        {"name": "unlock_key", "address": 3, "access": "wo", "guard": "open", "authorities": [],
         "size": 2, "init": 0,
         "description": "key",
         "fields": [{"name": "value", "offset": 0, "width": 16, "signed": False, "init": 0,
                     "description": "key"}]},
        {"name": "relay_control", "address": 0x101, "access": "rw", "guard": "open",
         "authorities": [], "size": 2,
         "init": 1 + (30 << 1), "description": "load relay",
         "fields": [{"name": "closed", "offset": 0, "width": 1, "signed": False, "init": 1,
                     "description": "relay closed"},
                    {"name": "cooldown_s", "offset": 1, "width": 10, "signed": False, "init": 30,
                     "description": "hold-off, s"}]},
    ]


def _fingerprint_map(*, address=0x0011, width=10, access=Access.RW, init=0,
                     description="load relay", field_description="hold-off, s",
                     field_name="cooldown_s", guard=Guard.OPEN, authorities=frozenset()) -> int:
    register_map = RegisterMap()
    register_map.add(0x0000, Register.number("serial_number", Access.RO, 32, "serial"))
    register_map.add(address, Register("relay_control", access, (
        Field("closed", 1, "relay closed"),
        Field(field_name, width, field_description, init=init),
    ), description, guard, authorities))
    return register_map.fingerprint()


def test_fingerprint_follows_what_a_host_depends_on():
    """The 32-bit fingerprint is stable and changes with address, width, access, init, name,
    guard or authorities."""
    base = _fingerprint_map()
    assert 0 <= base < 1 << 32
    assert _fingerprint_map() == base
    variants = [
        _fingerprint_map(address=0x0012),
        _fingerprint_map(width=11),
        _fingerprint_map(access=Access.WO),
        _fingerprint_map(init=7),
        _fingerprint_map(field_name="hold_off_s"),
        _fingerprint_map(guard=Guard.SEAL),
        _fingerprint_map(guard=Guard.AUTHENTICATED, authorities=frozenset({Authority.LOCAL})),
        _fingerprint_map(guard=Guard.AUTHENTICATED, authorities=frozenset({Authority.SUPPLIER})),
    ]
    assert base not in variants
    assert len(set(variants)) == len(variants)


def test_fingerprint_ignores_descriptions():
    """Rewording a register's or a field's description leaves the fingerprint alone."""
    base = _fingerprint_map()
    assert _fingerprint_map(description="the load relay, reworded") == base
    assert _fingerprint_map(field_description="minimum time between switchings") == base


# --- The bank on its bus ----------------------------------------------------------------

READ, WRITE = 0, 1


def _drive_ro(ctx, bank):
    """Drive the read-only registers' ports with DEMO_RO_VALUES."""
    for name, value in DEMO_RO_VALUES.items():
        ctx.set(getattr(bank, name).as_value(), value)


def _take_lanes(ctx, bus, value: int) -> int:
    """``value`` with the 16-bit lanes of ``r_data`` that ``r_lanes`` marks now taken,
    as an initiator gathers a read (RegisterBus)."""
    lanes, data = ctx.get(bus.r_lanes), ctx.get(bus.r_data)
    for lane in range(len(bus.r_lanes)):
        if lanes >> lane & 1:
            mask = 0xFFFF << (16 * lane)
            value = (value & ~mask) | (data & mask)
    return value


async def _access(ctx, bank, address, write, length, w_data=0, *, strobe=False):
    """Put one access on the bus; return (status, value read, r_length) as answered."""
    ctx.set(bank.bus.address, address)
    ctx.set(bank.bus.write, write)
    ctx.set(bank.bus.length, length)
    ctx.set(bank.bus.w_data, w_data)
    ctx.set(bank.bus.strobe, strobe)
    answer = (Status(ctx.get(bank.bus.status)), _take_lanes(ctx, bank.bus, 0),
              ctx.get(bank.bus.r_length))
    if strobe:
        await ctx.tick()
        ctx.set(bank.bus.strobe, 0)
    return answer


# (address, write, length) -> status, written out from the bank's docstring rules for
# demo_register_map(): ro 0x0000 (4 bytes), rw 0x0001 (1), rw 0x0002 (3),
# wo 0x0010 (2), rw 0x0011 (2), ro 0x0100 (4).
STATUS_TABLE = [
    (0x0000, READ, 0, Status.OK),
    (0x0000, READ, 1, Status.BAD_LENGTH),
    (0x0000, WRITE, 4, Status.READ_ONLY),
    (0x0000, WRITE, 0, Status.READ_ONLY),
    (0x0001, READ, 0, Status.OK),
    (0x0001, READ, 4, Status.BAD_LENGTH),
    (0x0001, WRITE, 1, Status.OK),
    (0x0001, WRITE, 0, Status.BAD_LENGTH),
    (0x0001, WRITE, 2, Status.BAD_LENGTH),
    (0x0002, WRITE, 3, Status.OK),
    (0x0002, WRITE, 4, Status.BAD_LENGTH),
    (0x0002, WRITE, 2, Status.BAD_LENGTH),
    (0x0010, READ, 0, Status.WRITE_ONLY),
    (0x0010, READ, 2, Status.WRITE_ONLY),
    (0x0010, WRITE, 2, Status.OK),
    (0x0010, WRITE, 1, Status.BAD_LENGTH),
    (0x0011, WRITE, 2, Status.OK),
    (0x0011, WRITE, 3, Status.BAD_LENGTH),
    (0x0011, READ, 0, Status.OK),
    (0x0100, READ, 0, Status.OK),
    (0x0100, WRITE, 4, Status.READ_ONLY),
    (0x0003, READ, 0, Status.BAD_ADDRESS),
    (0x0003, WRITE, 1, Status.BAD_ADDRESS),
    (0x000F, READ, 0, Status.BAD_ADDRESS),
    (0x0101, READ, 0, Status.BAD_ADDRESS),
    (0x1000, READ, 0, Status.BAD_ADDRESS),
    (0xFFFF, WRITE, 4, Status.BAD_ADDRESS),
]


def test_bank_answers_each_access_with_its_status():
    """Each access gets the status and ``r_length`` the bank's address/access/length rules give."""
    bank = RegisterBank(demo_register_map())
    sizes = {0x0000: 4, 0x0001: 1, 0x0002: 3, 0x0011: 2, 0x0100: 4}
    wrong = []

    async def bench(ctx):
        _drive_ro(ctx, bank)
        for address, write, length, status in STATUS_TABLE:
            got, _, r_length = await _access(ctx, bank, address, write, length)
            want_length = sizes[address] if (write, status) == (READ, Status.OK) else 0
            if (got, r_length) != (status, want_length):
                wrong.append((hex(address), "write" if write else "read", length,
                              f"got {got.name}/{r_length}, want {status.name}/{want_length}"))

    run_simulation(bank, bench)
    assert wrong == []


def test_bank_rw_registers_start_at_their_init():
    """After reset rw ports hold their fields' inits, and reads return them packed."""
    bank = RegisterBank(demo_register_map())

    async def bench(ctx):
        assert ctx.get(bank.display_contrast.as_value()) == 0x40
        assert ctx.get(bank.tariff_rate.as_value()) == 0x012345
        assert ctx.get(bank.relay_control.closed) == 1
        assert ctx.get(bank.relay_control.mode) == 5
        assert ctx.get(bank.relay_control.cooldown_s) == 300
        assert ctx.get(bank.unlock_key.written) == 0
        expected_reads = {0x0001: 0x40, 0x0002: 0x012345, 0x0011: 1 | (5 << 1) | (300 << 4)}
        for address, value in expected_reads.items():
            status, r_data, _ = await _access(ctx, bank, address, READ, 0)
            assert (status, r_data) == (Status.OK, value), hex(address)

    run_simulation(bank, bench)


def test_bank_reads_ro_registers_from_their_ports():
    """A read of an ro register returns what its owner drives, first field least significant."""
    bank = RegisterBank(demo_register_map())

    async def bench(ctx):
        _drive_ro(ctx, bank)
        assert (await _access(ctx, bank, 0x0000, READ, 0))[:2] == (Status.OK, 0xC0FFEE42)
        ctx.set(bank.supply_status.voltage_dv, 2301)
        ctx.set(bank.supply_status.frequency_chz, 4998)
        assert (await _access(ctx, bank, 0x0100, READ, 0))[:2] == (Status.OK, 2301 | (4998 << 16))

    run_simulation(bank, bench)


def test_bank_writes_only_on_strobe_with_ok_status():
    """An rw register changes only on a strobe whose status is OK, and only that register."""
    bank = RegisterBank(demo_register_map())

    async def bench(ctx):
        tariff = bank.tariff_rate.as_value()
        await _access(ctx, bank, 0x0002, WRITE, 3, 0xABCDEF, strobe=False)
        await ticks(ctx, 2)
        assert ctx.get(tariff) == 0x012345, "written without a strobe"
        status, *_ = await _access(ctx, bank, 0x0002, WRITE, 2, 0xABCDEF, strobe=True)
        assert status == Status.BAD_LENGTH and ctx.get(tariff) == 0x012345
        status, *_ = await _access(ctx, bank, 0x0002, READ, 0, 0xABCDEF, strobe=True)
        assert status == Status.OK and ctx.get(tariff) == 0x012345, "written by a read"
        status, *_ = await _access(ctx, bank, 0x0003, WRITE, 3, 0xABCDEF, strobe=True)
        assert status == Status.BAD_ADDRESS and ctx.get(tariff) == 0x012345
        status, *_ = await _access(ctx, bank, 0x0002, WRITE, 3, 0xABCDEF, strobe=True)
        assert status == Status.OK and ctx.get(tariff) == 0xABCDEF
        assert ctx.get(bank.display_contrast.as_value()) == 0x40, "a neighbour changed"
        status, r_data, r_length = await _access(ctx, bank, 0x0002, READ, 0)
        assert (status, r_data, r_length) == (Status.OK, 0xABCDEF, 3)

    run_simulation(bank, bench)


def test_bank_write_keeps_only_the_register_bytes():
    """A write stores the low ``size`` bytes of ``w_data`` into the fields in order."""
    bank = RegisterBank(demo_register_map())

    async def bench(ctx):
        value = 0 | (3 << 1) | (1023 << 4)
        status, *_ = await _access(ctx, bank, 0x0011, WRITE, 2, 0xFFFF_0000 | value, strobe=True)
        assert status == Status.OK
        assert ctx.get(bank.relay_control.closed) == 0
        assert ctx.get(bank.relay_control.mode) == 3
        assert ctx.get(bank.relay_control.cooldown_s) == 1023
        status, *_ = await _access(ctx, bank, 0x0001, WRITE, 1, 0x1234_5678, strobe=True)
        assert status == Status.OK and ctx.get(bank.display_contrast.as_value()) == 0x78

    run_simulation(bank, bench)


def test_bank_wo_register_passes_an_ok_write_on_in_its_cycle():
    """A strobed OK wo write shows its data with ``written`` in the strobe's cycle; a
    write of the wrong length, an unstrobed one and the cycles after show no pulse."""
    bank = RegisterBank(demo_register_map())

    async def bench(ctx):
        key = bank.unlock_key
        for length, strobe, status, written in ((1, 1, Status.BAD_LENGTH, 0),
                                                (2, 0, Status.OK, 0),
                                                (2, 1, Status.OK, 1)):
            ctx.set(bank.bus.address, 0x0010)
            ctx.set(bank.bus.write, 1)
            ctx.set(bank.bus.length, length)
            ctx.set(bank.bus.w_data, 0xBEEF)
            ctx.set(bank.bus.strobe, strobe)
            assert Status(ctx.get(bank.bus.status)) is status
            assert ctx.get(key.written) == written
            if written:
                assert ctx.get(key.data.as_value()) == 0xBEEF
            await ctx.tick()
        ctx.set(bank.bus.strobe, 0)
        assert ctx.get(key.written) == 0

    run_simulation(bank, bench)


def test_bank_wo_write_waits_for_its_component():
    """A component that lowers ``ready`` holds the write: ``written`` and the data stay,
    and the bus is acknowledged only in the cycle ``ready`` rises; other accesses are
    not held up by it. No read lane is marked before the ack, so an initiator that
    reads into the register holding ``w_data`` keeps the value the component copies."""
    bank = RegisterBank(demo_register_map())

    async def bench(ctx):
        key = bank.unlock_key
        ctx.set(key.ready, 0)
        ctx.set(bank.bus.address, 0x0010)
        ctx.set(bank.bus.write, 1)
        ctx.set(bank.bus.length, 2)
        ctx.set(bank.bus.w_data, 0xCAFE)
        ctx.set(bank.bus.strobe, 1)
        for _ in range(3):
            assert ctx.get(key.written) == 1
            assert (ctx.get(bank.bus.ack), ctx.get(bank.bus.r_lanes)) == (0, 0)
            assert ctx.get(key.data.as_value()) == 0xCAFE
            await ctx.tick()
        ctx.set(key.ready, 1)
        assert (ctx.get(key.written), ctx.get(bank.bus.ack)) == (1, 1)
        assert Status(ctx.get(bank.bus.status)) is Status.OK
        await ctx.tick()
        ctx.set(key.ready, 0)   # a component busy with something else
        ctx.set(bank.bus.address, 0x0011)
        assert ctx.get(bank.bus.ack) == 1 and ctx.get(key.written) == 0

    run_simulation(bank, bench)


def test_bank_refuses_register_named_like_its_bus_port():
    """A register called ``bus`` cannot silently replace the bank's bus port."""
    register_map = RegisterMap()
    register_map.add(0x0000, Register.number("bus", Access.RW, 8, "clashes with the port"))
    with pytest.raises(ValueError, match="'bus'"):
        RegisterBank(register_map)


def test_read_only_register_cannot_be_guarded():
    """Guards are about writes: an ro register refuses one."""
    with pytest.raises(ValueError, match="'voltage_gain' is read-only"):
        Register.number("voltage_gain", Access.RO, 16, "gain", guard=Guard.SEAL)


@pytest.mark.parametrize("guard, authorities", [
    (Guard.AUTHENTICATED, frozenset()),
    (Guard.PROVISIONING, frozenset()),
    (Guard.SEAL, frozenset({Authority.LOCAL})),
    (Guard.OPEN, frozenset({Authority.LOCAL})),
])
def test_authorities_come_with_authenticated_guards_only(guard, authorities):
    """A guard that takes authenticated writes needs authorities, and only such a guard
    may have them: a register nobody may write, or authorities that mean nothing, are
    declaration mistakes."""
    with pytest.raises(ValueError, match="authorities"):
        Register.number("clock", Access.WO, 32, "set", guard=guard, authorities=authorities)


def test_write_only_register_has_no_reset_value():
    with pytest.raises(ValueError, match="no reset value"):
        Register.number("unlock_key", Access.WO, 16, "key", init=1)


#: A register of each guard; the authenticated ones take the local host only.
GUARDED = {
    "scratch": (0x0000, Guard.OPEN),
    "gain": (0x0001, Guard.SEAL),
    "clock": (0x0002, Guard.AUTHENTICATED),
    "key": (0x0003, Guard.PROVISIONING),
    "calibration": (0x0004, Guard.SEAL_AUTHENTICATED),
}


def _expected_guard_status(guard: Guard, *, seal_open: bool, authenticated: bool,
                           permitted: bool) -> Status:
    """The guard rules of the bank's docstring, written out as a table would be."""
    if guard is Guard.OPEN:
        return Status.OK
    if guard is Guard.SEAL:
        return Status.OK if seal_open else Status.SEALED
    if guard is Guard.SEAL_AUTHENTICATED:
        if not seal_open:
            return Status.SEALED
        if not authenticated:
            return Status.UNAUTHENTICATED
        return Status.OK if permitted else Status.FORBIDDEN
    if not authenticated:
        if guard is Guard.AUTHENTICATED:
            return Status.UNAUTHENTICATED
        return Status.OK if seal_open else Status.SEALED
    return Status.OK if permitted else Status.FORBIDDEN


def test_guards_decide_which_writes_are_done():
    """Every guard against plain and authenticated writes, seal open and closed, from a
    listed and an unlisted authority: the status is the table's, only an OK write is
    done (a rw value changes, a wo write is passed on), and only a sealed register's
    (SEAL, SEAL_AUTHENTICATED) write pulses ``sealed_write``."""
    register_map = RegisterMap()
    for name, (address, guard) in GUARDED.items():
        access = Access.WO if guard in (Guard.AUTHENTICATED, Guard.PROVISIONING) else Access.RW
        register_map.add(address, Register.number(
            name, access, 16, name, guard=guard,
            authorities={Authority.LOCAL} if guard.authenticated else frozenset()))
    bank = RegisterBank(register_map)
    access_of = {register.name: register.access for _, register in register_map}

    async def bench(ctx):
        value = 0x0100
        for name, (address, guard) in GUARDED.items():
            for seal_open in (False, True):
                for authenticated in (False, True):
                    for authority in (Authority.LOCAL, Authority.SUPPLIER):
                        value += 1
                        ctx.set(bank.seal_open, seal_open)
                        ctx.set(bank.bus.authenticated, authenticated)
                        ctx.set(bank.bus.authority, authority)
                        expected = _expected_guard_status(
                            guard, seal_open=seal_open, authenticated=authenticated,
                            permitted=authority is Authority.LOCAL)
                        where = f"{name}, seal {seal_open}, authenticated {authenticated}, {authority.name}"
                        ctx.set(bank.bus.address, address)
                        ctx.set(bank.bus.write, 1)
                        ctx.set(bank.bus.length, 2)
                        ctx.set(bank.bus.w_data, value)
                        ctx.set(bank.bus.strobe, 1)
                        assert Status(ctx.get(bank.bus.status)) is expected, where
                        if access_of[name] is Access.WO:
                            port = getattr(bank, name)
                            assert ctx.get(port.written) == (expected is Status.OK), where
                            if expected is Status.OK:
                                assert ctx.get(port.data.value) == value, where
                        await ctx.tick()
                        ctx.set(bank.bus.strobe, 0)
                        assert ctx.get(bank.sealed_write) == (guard.sealed
                                                              and expected is Status.OK), where
                        if access_of[name] is Access.RW:
                            stored = ctx.get(getattr(bank, name).value)
                            assert (stored == value) == (expected is Status.OK), where

    run_simulation(bank, bench)


def test_sealed_register_is_written_only_with_the_seal_open():
    """With the seal closed a write is SEALED and changes nothing; open, it is done and
    pulses ``sealed_write``; reads work either way; unsealed registers ignore the seal."""
    register_map = RegisterMap()
    register_map.add(0x0000, Register.number("energy_quantum", Access.RW, 16, "calibration",
                                             init=0x1234, guard=Guard.SEAL))
    register_map.add(0x0001, Register.number("display_contrast", Access.RW, 8, "LCD"))
    bank = RegisterBank(register_map)

    async def bench(ctx):
        ctx.set(bank.seal_open, 0)
        assert (await _access(ctx, bank, 0x0000, WRITE, 2, 0xBEEF, strobe=True))[0] is Status.SEALED
        assert ctx.get(bank.sealed_write) == 0
        assert await _access(ctx, bank, 0x0000, READ, 0) == (Status.OK, 0x1234, 2)
        assert (await _access(ctx, bank, 0x0001, WRITE, 1, 0x77, strobe=True))[0] is Status.OK
        assert ctx.get(bank.sealed_write) == 0
        ctx.set(bank.seal_open, 1)
        assert (await _access(ctx, bank, 0x0000, WRITE, 1, 0xBEEF, strobe=True))[0] is Status.BAD_LENGTH
        assert ctx.get(bank.sealed_write) == 0
        assert (await _access(ctx, bank, 0x0000, WRITE, 2, 0xBEEF, strobe=True))[0] is Status.OK
        assert ctx.get(bank.sealed_write) == 1  # for the one cycle after the write
        await ctx.tick()
        assert ctx.get(bank.sealed_write) == 0
        assert await _access(ctx, bank, 0x0000, READ, 0) == (Status.OK, 0xBEEF, 2)

    run_simulation(bank, bench)


def test_signed_fields_round_trip_through_the_bank_and_host():
    """A signed field is two's complement on the wire; the host decodes it negative."""
    from refmeter.soft.registers import decode, encode
    register = Register.number("energy_fraction", Access.RW, 20, "signed", init=-3, signed=True)
    assert register.init == (1 << 20) - 3
    assert decode(register, encode(register, -524288)) == -524288
    assert decode(register, register.init.to_bytes(register.size, "big")) == -3
    with pytest.raises(ValueError, match=r"does not fit energy_fraction \(signed 20 bits\)"):
        encode(register, 524288)
    register_map = RegisterMap()
    register_map.add(0, register)
    bank = RegisterBank(register_map)

    async def bench(ctx):
        status, data, _ = await _access(ctx, bank, 0, READ, 0)
        assert (status, decode(register, data.to_bytes(register.size, "big"))) == (Status.OK, -3)

    run_simulation(bank, bench)


# --- Registers kept in block RAM ------------------------------------------------------

def _stored_map() -> RegisterMap:
    register_map = RegisterMap()
    register_map.add(0x0000, Register.number("serial_number", Access.RO, 32, "serial"))
    register_map.add(0x0001, Register.number("energy_fraction", Access.RO, 61, "signed",
                                             signed=True))
    register_map.add(0x0002, Register.number("windows_completed", Access.RO, 32, "count"))
    register_map.add(0x0003, Register.number("tariff_rate", Access.RW, 24, "rate"))
    return register_map


#: Where the store keeps them: energy_fraction in words 4..7, windows_completed in 9..10.
STORE = RegisterStore(addresses={"energy_fraction": 4, "windows_completed": 9}, address_width=4)


class StoredBank(Elaboratable):
    """A bank whose store is a RAM the testbench publishes into, a word a cycle through
    ``publish_*``, as a component keeping registers in block RAM would."""

    def __init__(self):
        self.bank = RegisterBank(_stored_map(), stores={"results": STORE})
        self.publish_addr = Signal(STORE.address_width)
        self.publish_data = Signal(16)
        self.publish_en = Signal()

    def elaborate(self, platform):
        m = Module()
        m.submodules.bank = self.bank
        m.submodules.ram = ram = Memory(shape=16, depth=1 << STORE.address_width, init=[])
        write = ram.write_port()
        read = ram.read_port(transparent_for=(write,))
        port = self.bank.results
        m.d.comb += [write.addr.eq(self.publish_addr), write.data.eq(self.publish_data),
                     write.en.eq(self.publish_en), read.addr.eq(port.addr), read.en.eq(port.en),
                     port.data.eq(read.data)]
        return m


async def _publish(ctx, top, address, value, words, *, order=None):
    """Write ``value`` into the store's ``words`` words from ``address``, a word a
    cycle, lowest first unless ``order`` says otherwise."""
    for k in order or range(words):
        ctx.set(top.publish_addr, address + k)
        ctx.set(top.publish_data, (value >> (16 * k)) & 0xFFFF)
        ctx.set(top.publish_en, 1)
        await ctx.tick()
    ctx.set(top.publish_en, 0)


async def _stored_read(ctx, bank, address):
    """A read strobed until acknowledged, its value gathered from the lanes as they
    come: (status, value, r_length, cycles to the ack)."""
    ctx.set(bank.bus.address, address)
    ctx.set(bank.bus.write, 0)
    ctx.set(bank.bus.length, 0)
    ctx.set(bank.bus.strobe, 1)
    cycles, value = 0, 0
    while not ctx.get(bank.bus.ack):
        value = _take_lanes(ctx, bank.bus, value)
        await ctx.tick()
        cycles += 1
    answer = (Status(ctx.get(bank.bus.status)), _take_lanes(ctx, bank.bus, value),
              ctx.get(bank.bus.r_length))
    await ctx.tick()
    ctx.set(bank.bus.strobe, 0)
    return (*answer, cycles)


def test_store_register_must_be_read_only_and_fit():
    with pytest.raises(ValueError, match="'tariff_rate' is not read-only"):
        RegisterBank(_stored_map(), stores={"results": RegisterStore(
            addresses={"tariff_rate": 0}, address_width=4)})
    with pytest.raises(ValueError, match="'energy_fraction' does not fit store 'results'"):
        RegisterBank(_stored_map(), stores={"results": RegisterStore(
            addresses={"energy_fraction": 13}, address_width=4)})
    assert not hasattr(RegisterBank(_stored_map(), stores={"results": STORE}), "energy_fraction")


def test_bank_reads_stored_registers_from_their_words():
    """A stored register reads as its words, least significant first, with the bits
    above its width 0 (a negative value's sign extension is not sent); the read is
    acknowledged words + 1 cycles after the strobe rises, other accesses at once."""
    top = StoredBank()
    bank = top.bank

    async def bench(ctx):
        ctx.set(bank.serial_number.value, 0xC0FFEE42)
        await _publish(ctx, top, 4, -5 & ((1 << 64) - 1), 4)
        await _publish(ctx, top, 9, 0x1234_5678, 2)
        assert await _stored_read(ctx, bank, 0x0001) == (Status.OK, (1 << 61) - 5, 8, 5)
        assert await _stored_read(ctx, bank, 0x0002) == (Status.OK, 0x1234_5678, 4, 3)
        assert await _stored_read(ctx, bank, 0x0000) == (Status.OK, 0xC0FFEE42, 4, 0)
        # A shorter register after a longer one: the longer one's upper words are gone.
        assert await _stored_read(ctx, bank, 0x0002) == (Status.OK, 0x1234_5678, 4, 3)
        assert (await _access(ctx, bank, 0x0001, WRITE, 8, 0, strobe=True))[0] is Status.READ_ONLY
        assert (await _access(ctx, bank, 0x0001, READ, 1, 0, strobe=True))[0] is Status.BAD_LENGTH

    run_simulation(top, bench)


def _torn_reads(order) -> tuple[int, int]:
    """Publish energy_fraction over and over (all four words equal, a new value each
    time, in ``order``) while reading it back to back, so that reads start at every
    cycle of a publication; return (reads, reads whose words differ)."""
    top = StoredBank()
    reads, torn = [], []

    async def publisher(ctx):
        for n in range(1, 60):
            await _publish(ctx, top, 4, n * 0x0001_0001_0001_0001, 4, order=order)
            await ticks(ctx, n % 5)  # vary the gap, so reads meet publications at every phase

    async def reader(ctx):
        for _ in range(120):
            status, value, _, _ = await _stored_read(ctx, top.bank, 0x0001)
            assert status is Status.OK
            words = {(value >> (16 * k)) & 0xFFFF for k in range(3)} | {value >> 48}
            reads.append(value)
            if len(words) != 1:
                torn.append(value)

    run_simulation(top, reader, background=[publisher])
    return len(reads), len(torn)


def test_stored_register_read_is_never_torn():
    """A read a word a cycle, lowest first, in step with a publication written the same
    way, sees all of one publication: never some words of one and some of the next."""
    reads, torn = _torn_reads(order=None)
    assert (reads, torn) == (120, 0)


def test_torn_read_check_can_fail():
    """The same check catches torn reads when a publication breaks the rule (highest
    word first), so its silence above means something."""
    _, torn = _torn_reads(order=(3, 2, 1, 0))
    assert torn > 0
