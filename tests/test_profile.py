# amaranth: UnusedElaboratable=no
"""The load profile: the gateware's ring of interval records, and the host's reader.

Expectations come from :func:`expected_records`, the behaviour written out from the
docstring of ``LoadProfile`` (intervals end where UTC seconds are a multiple of
the interval, energy is the counters' difference modulo 2**32 in a 30-bit field,
flags say why an interval is not whole), not from the gateware's code.
"""

import collections
import csv
import datetime
import io
import json
import random
from dataclasses import dataclass

import pytest
from amaranth_boards.icebreaker import ICEBreakerPlatform
from amaranth.back import rtlil
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In
from amaranth.sim import Simulator

from refmeter.gateware.hostlink.protocol import Status
from refmeter.gateware.metrology.profile import (CHECK_CYCLES, ENERGY_WIDTH, SELECT_CYCLES,
                                                 LoadProfile)
from refmeter.gateware.registers import RegisterBank, RegisterBus, RegisterMap, connect_registers
from refmeter.gateware.rtc import RealTimeClock
from refmeter.soft import cli
from refmeter.soft.errors import MeterError
from refmeter.soft.profile import read_profile
from refmeter.soft.registers import decode, encode

from gateware_helpers import run_simulation, ticks

#: Clock cycles per simulated second where the test drives the UTC seconds itself.
CYCLES_PER_SECOND = CHECK_CYCLES + 7
#: 2025-06-01T12:00:00Z, a multiple of every interval the tests use but 7 and 11.
NOON = 1_748_779_200
MODULUS = 1 << 32
ENERGY_MODULUS = 1 << ENERGY_WIDTH
#: Cycles a simulated host link takes per access in the "host slower than the meter" test.
LATENCY = 11
FLAGS = ("power_up", "clock_set", "interval_changed")


@dataclass(frozen=True)
class Second:
    """What the meter sees from one second on: its clock, the energy counters, and
    the interval length the host has set."""

    utc: int
    imported: int
    exported: int
    interval: int


def expected_records(seconds: list[Second]) -> list[dict]:
    """Records the spec asks for: ``seconds[0]`` is the state at reset (the baseline),
    each later entry a change of the clock (normally by +1 s)."""
    first = seconds[0]
    base_import, base_export = first.imported, first.exported
    previous_utc, previous_interval = first.utc, 1800  # the interval after reset
    flags = {"power_up": 1, "clock_set": 0, "interval_changed": 0}
    records = []
    for second in seconds[1:]:
        if second.utc != previous_utc + 1:
            flags["clock_set"] = 1
        if second.interval != previous_interval:
            flags["interval_changed"] = 1
        previous_utc, previous_interval = second.utc, second.interval
        if second.interval and second.utc % second.interval == 0:
            records.append({"end_seconds": second.utc,
                            "active_import_wh": (second.imported - base_import) % ENERGY_MODULUS,
                            "active_export_wh": (second.exported - base_export) % ENERGY_MODULUS,
                            **flags})
            base_import, base_export = second.imported, second.exported
            flags = dict.fromkeys(FLAGS, 0)
    return records


def steady_seconds(start: int, count: int, *, interval: int, rng: random.Random,
                   imported: int = 0, exported: int = 0) -> list[Second]:
    """``count`` seconds from ``start``, with a few Wh of import and export in each."""
    seconds = []
    for utc in range(start, start + count):
        seconds.append(Second(utc, imported % MODULUS, exported % MODULUS, interval))
        imported += rng.randrange(0, 40)
        exported += rng.randrange(0, 3)
    return seconds


def record_value(ctx, dut) -> dict:
    value = ctx.get(dut.profile_record)
    return {name: getattr(value, name) for name in
            ("end_seconds", "active_import_wh", "active_export_wh", *FLAGS)}


async def read_record(ctx, dut, number: int) -> dict:
    """The record in the slot of ``number``, through the ports, as the bank reads it."""
    ctx.set(dut.profile_select.value, number % MODULUS)
    await ticks(ctx, SELECT_CYCLES)
    return record_value(ctx, dut)


async def play(ctx, dut, seconds: list[Second], *, utc=None, tick_ms=None) -> None:
    """Drive ``seconds``, one every :data:`CYCLES_PER_SECOND` cycles, as the real-time
    clock would: a second that follows the previous one comes with a millisecond tick,
    any other is the clock being set."""
    utc = dut.utc_seconds if utc is None else utc
    tick_ms = dut.tick_ms if tick_ms is None else tick_ms
    previous = None
    for second in seconds:
        ctx.set(utc, second.utc)
        ctx.set(tick_ms, previous is not None and second.utc == previous + 1)
        ctx.set(dut.import_wh, second.imported)
        ctx.set(dut.export_wh, second.exported)
        ctx.set(dut.profile_interval_s.value, second.interval)
        await ctx.tick()
        ctx.set(tick_ms, 0)
        await ticks(ctx, CYCLES_PER_SECOND - 1)
        previous = second.utc


def in_ring(number: int, head: int, capacity: int) -> bool:
    """Whether the ring holds record ``number`` when ``head`` records have been written."""
    return max(0, head - capacity) <= number < head


def record_profile(seconds: list[Second], *, capacity: int = 64, reader=None):
    """Play ``seconds`` into a fresh ``LoadProfile``; return its head, capacity and what
    the ring shows for every number from 0 to head (the last not yet written).

    ``reader(dut, playing)`` makes a testbench that runs alongside as a host while
    ``playing()`` is true.
    """
    dut = LoadProfile(capacity=capacity)
    result = {}
    state = {"playing": True}

    async def bench(ctx):
        await play(ctx, dut, seconds)
        state["playing"] = False
        await ticks(ctx, 8)  # the reader finishes its last read
        head = ctx.get(dut.profile_head.value)
        result["head"] = head
        result["capacity"] = ctx.get(dut.profile_capacity.value)
        result["records"] = [await read_record(ctx, dut, number) for number in range(head + 1)]

    run_simulation(dut, bench,
                   background=[] if reader is None else [reader(dut, lambda: state["playing"])])
    return result


def valid_records(result) -> list[dict]:
    """The records the ring still holds, by the rule a host applies with the head."""
    return [record for number, record in enumerate(result["records"])
            if in_ring(number, result["head"], result["capacity"])]


# --- Recording ----------------------------------------------------------------------------

def test_records_end_at_aligned_boundaries_with_the_energy_of_their_interval():
    """Records end where UTC seconds are a multiple of the interval, carry the energy
    counted since the previous boundary, and the first one is flagged partial."""
    seconds = steady_seconds(NOON - 7, 40, interval=10, rng=random.Random(1),
                             imported=123_456, exported=789)
    seconds = [Second(s.utc, s.imported, s.exported, 1800 if i == 0 else 10)
               for i, s in enumerate(seconds)]
    result = record_profile(seconds)
    records = valid_records(result)

    assert [record["end_seconds"] for record in records] == [NOON, NOON + 10, NOON + 20, NOON + 30]
    assert records == expected_records(seconds)
    assert records[0]["power_up"] and records[0]["interval_changed"]
    assert not any(records[1][flag] for flag in FLAGS)
    by_utc = {second.utc: second for second in seconds}
    assert records[2]["active_import_wh"] == by_utc[NOON + 20].imported - by_utc[NOON + 10].imported
    assert result["head"] == 4 and result["capacity"] == 64
    assert not any(result["records"][4].values()), "record 4 has not been written"


def test_default_interval_is_half_an_hour_aligned_to_the_hour():
    """With the reset value of 1800 s, intervals end at :00 and :30."""
    start = NOON + 1800 - 3  # 12:29:57
    seconds = steady_seconds(start, 8, interval=1800, rng=random.Random(2))
    seconds += steady_seconds(NOON + 3600 - 2, 4, interval=1800, rng=random.Random(3),
                              imported=seconds[-1].imported, exported=seconds[-1].exported)
    records = valid_records(record_profile(seconds))
    assert [record["end_seconds"] for record in records] == [NOON + 1800, NOON + 3600]
    assert records == expected_records(seconds)
    assert records[1]["clock_set"], "the jump from 12:30:04 to 12:59:58 is a clock change"


def test_energy_difference_wraps_at_2_32():
    """The counters wrap at 2**32 within an interval: the record holds the energy, not
    a huge or negative number."""
    seconds = [Second(NOON - 5 + n, (MODULUS - 45 + 20 * n) % MODULUS,
                      (MODULUS - 1 + 3 * n) % MODULUS, 5) for n in range(11)]
    records = valid_records(record_profile(seconds))
    assert [(r["end_seconds"], r["active_import_wh"], r["active_export_wh"]) for r in records] == [
        (NOON, 100, 15), (NOON + 5, 100, 15)]


def test_ring_overwrites_the_oldest_record_and_head_tells_the_host():
    """With a ring of 4, after 11 records the ring holds records 7 to 10, each slot the
    newest record of its number modulo 4; head says 11 were written, so the host
    knows records 0 to 6 were overwritten."""
    seconds = steady_seconds(NOON - 1, 23, interval=2, rng=random.Random(4))
    expected = expected_records(seconds)
    result = record_profile(seconds, capacity=4)

    assert result["head"] == len(expected) == 11
    assert result["capacity"] == 4
    assert valid_records(result) == expected[7:]
    for number, record in enumerate(result["records"][:11]):
        assert record == expected[7 + (number - 7) % 4]


def test_interval_change_applies_from_the_next_second():
    """A new length takes effect at once: the interval in progress ends at the first
    multiple of the new length, flagged, and the following ones are whole."""
    rng = random.Random(5)
    seconds = steady_seconds(NOON - 1, 14, interval=10, rng=rng)           # ends 12:00:00, :10
    last = seconds[-1]
    seconds += steady_seconds(last.utc + 1, 10, interval=3, rng=rng,        # 12:00:13 .. :22
                              imported=last.imported, exported=last.exported)
    last = seconds[-1]
    seconds += steady_seconds(last.utc + 1, 30, interval=20, rng=rng,       # 12:00:23 .. :52
                              imported=last.imported, exported=last.exported)
    records = valid_records(record_profile(seconds))

    assert [(r["end_seconds"] - NOON, r["interval_changed"]) for r in records] == [
        (0, 1), (10, 0), (15, 1), (18, 0), (21, 0), (40, 1)]
    assert records == expected_records(seconds)


def test_clock_set_flags_the_interval_and_boundaries_follow_the_new_time():
    """Setting the clock forward or back: the interval in progress is flagged and ends at
    the next boundary of the new time."""
    rng = random.Random(6)
    seconds = steady_seconds(NOON - 2, 5, interval=5, rng=rng)              # ends 12:00:00
    last = seconds[-1]
    seconds += steady_seconds(NOON + 103, 5, interval=5, rng=rng,          # forward, ends :01:45
                              imported=last.imported, exported=last.exported)
    last = seconds[-1]
    seconds += steady_seconds(NOON + 8, 8, interval=5, rng=rng,            # back, ends :10, :15
                              imported=last.imported, exported=last.exported)
    records = valid_records(record_profile(seconds))

    assert [(r["end_seconds"] - NOON, r["clock_set"]) for r in records] == [
        (0, 0), (105, 1), (10, 1), (15, 0)]
    assert records == expected_records(seconds)


def test_interval_zero_holds_the_interval_open_without_losing_energy():
    """Length 0 writes nothing; when a length is set again, the one record covers all
    the energy since the last boundary."""
    rng = random.Random(7)
    seconds = steady_seconds(NOON - 1, 3, interval=2, rng=rng)
    last = seconds[-1]
    seconds += steady_seconds(last.utc + 1, 10, interval=0, rng=rng,
                              imported=last.imported, exported=last.exported)
    last = seconds[-1]
    seconds += steady_seconds(last.utc + 1, 4, interval=2, rng=rng,
                              imported=last.imported, exported=last.exported)
    records = valid_records(record_profile(seconds))

    assert [(r["end_seconds"] - NOON, r["interval_changed"]) for r in records] == [
        (0, 1), (12, 1), (14, 0)]
    assert records == expected_records(seconds)
    assert records[1]["active_import_wh"] == seconds[-4].imported - seconds[1].imported


def test_capacity_must_be_a_power_of_two():
    with pytest.raises(ValueError, match="power of two"):
        LoadProfile(capacity=300)


def test_on_the_up5k_the_ring_is_four_sprams():
    """Built for the iCE40 UltraPlus, the ring is four SPRAMs side by side (the
    simulations above run the same logic around a ``Memory``), and a ring larger
    than they hold is refused."""
    netlist = rtlil.convert(LoadProfile(capacity=8192), platform=ICEBreakerPlatform())
    assert netlist.count("cell \\SB_SPRAM256KA ") == 4
    assert "$mem" not in netlist
    with pytest.raises(ValueError, match="SPRAMs hold up to 16384 words .* not 32768 x 64"):
        rtlil.convert(LoadProfile(capacity=16384), platform=ICEBreakerPlatform())


# --- Reading while recording --------------------------------------------------------------

def test_a_host_reading_the_ring_does_not_change_what_is_recorded():
    """A host that reads a record every few cycles, including the slot being written
    and the oldest one being overwritten, leaves the same ring as no host at all; and
    every record it reads is whole: if the head read in the same cycle says the ring
    still holds that number, it is that number's record, never a mix of two."""
    seconds = steady_seconds(NOON - 1, 30, interval=2, rng=random.Random(8))
    expected = expected_records(seconds)
    observed = []

    def reader(dut, playing):
        async def bench(ctx):
            rng = random.Random(9)
            while playing():
                head_before = ctx.get(dut.profile_head.value)
                number = head_before + rng.randrange(-5, 2)  # newest, oldest, not yet written
                record = await read_record(ctx, dut, number)
                observed.append((number, head_before, ctx.get(dut.profile_head.value), record))
                await ticks(ctx, rng.randrange(0, 3))
        return bench

    quiet = record_profile(seconds, capacity=4)
    busy = record_profile(seconds, capacity=4, reader=reader)

    assert busy == quiet
    assert valid_records(busy) == expected[-4:]
    held = [(number, record) for number, before, after, record in observed
            if number < before and in_ring(number, after, 4)]
    assert 40 < len(held) < len(observed)
    assert any(after > before for _, before, after, _ in observed), "reads met writes"
    for number, record in held:
        assert record == expected[number]


class ProfileWithClock(wiring.Component):
    """The profile as a meter runs it, with nothing from outside: its own UTC clock
    (set once at start-up, to 11:59:59), a steady load (4 Wh imported and
    1 Wh exported per second) and a 2 s interval, all fixed in the hardware."""

    CLK_FREQ = 1000

    def __init__(self):
        self.profile = LoadProfile(capacity=8)
        super().__init__({"head": wiring.Out(32)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.rtc = rtc = RealTimeClock(clk_freq=self.CLK_FREQ)
        m.submodules.profile = profile = self.profile
        preset = Signal(init=1)
        cycle = Signal(range(self.CLK_FREQ))
        imported, exported = Signal(32), Signal(32)
        m.d.sync += preset.eq(0)
        m.d.comb += [rtc.set.payload.eq(NOON - 1), rtc.set.valid.eq(preset)]
        m.d.sync += cycle.eq(cycle + 1)
        with m.If(cycle == self.CLK_FREQ - 1):
            m.d.sync += cycle.eq(0)
        with m.If(cycle % 250 == 0):
            m.d.sync += imported.eq(imported + 1)
        with m.If(cycle == 500):
            m.d.sync += exported.eq(exported + 1)
        m.d.comb += [
            profile.utc_seconds.eq(rtc.seconds),
            profile.tick_ms.eq(rtc.tick_ms),
            profile.import_wh.eq(imported),
            profile.export_wh.eq(exported),
            profile.profile_interval_s.value.eq(2),
            self.head.eq(profile.profile_head.value),
        ]
        return m


def test_profile_keeps_recording_with_no_host_at_all():
    """Nothing but the clock runs for 13 s of the meter's time: the records are there."""
    top = ProfileWithClock()
    records = []

    async def bench(ctx):
        await ticks(ctx, 13 * ProfileWithClock.CLK_FREQ)
        assert ctx.get(top.head) == 6  # 12:00:00, :02, :04, :06, :08, :10
        # Record 6 first: the second that ends it has begun, and its check takes
        # longer than one read, not than seven.
        unwritten = await read_record(ctx, top.profile, 6)
        for number in range(6):
            records.append(await read_record(ctx, top.profile, number))
        records.append(unwritten)

    run_simulation(top, bench)
    assert [r["end_seconds"] - NOON for r in records[:6]] == [0, 2, 4, 6, 8, 10]
    assert not any(records[6].values()), "record 6 is not written yet"
    assert [(r["active_import_wh"], r["active_export_wh"]) for r in records[1:6]] == [(8, 2)] * 5
    assert records[0]["power_up"] and records[0]["clock_set"]
    assert not any(r[flag] for r in records[1:6] for flag in FLAGS)


# --- Through a register bank, and the host's reader -----------------------------------------

def profile_register_map() -> RegisterMap:
    register_map = RegisterMap()
    register_map.add_block(0x0300, LoadProfile.REGISTERS)
    return register_map


class ProfileBehindBank(wiring.Component):
    """``LoadProfile`` behind a ``RegisterBank``, as the meter top connects it."""

    def __init__(self, *, capacity: int):
        self.register_map = profile_register_map()
        self.profile = LoadProfile(capacity=capacity)
        super().__init__({
            "bus": In(RegisterBus(data_width=self.register_map.data_width)),
            "seal_open": In(1),
            "utc_seconds": In(32),
            "tick_ms": In(1),
            "import_wh": In(32),
            "export_wh": In(32),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.bank = bank = RegisterBank(self.register_map)
        m.submodules.profile = profile = self.profile
        wiring.connect(m, wiring.flipped(self.bus), bank.bus)
        connect_registers(m, bank, profile, profile.registers)
        m.d.comb += [
            bank.seal_open.eq(self.seal_open),
            profile.utc_seconds.eq(self.utc_seconds),
            profile.tick_ms.eq(self.tick_ms),
            profile.import_wh.eq(self.import_wh),
            profile.export_wh.eq(self.export_wh),
        ]
        return m


class SimulatedProfileMeter:
    """What :func:`read_profile` needs of a :class:`~refmeter.soft.device.Meter`
    (``register_map``, ``read``, ``write``), answered by :class:`ProfileBehindBank` in
    Amaranth's simulator: each access is one bus strobe, and the simulation (the
    meter's clock and load included) advances only while the host waits for an answer.
    """

    url = "sim:profile"

    def __init__(self, seconds: list[Second], *, capacity: int, seal_open: bool = False,
                 latency: int = SELECT_CYCLES):
        self.top = ProfileBehindBank(capacity=capacity)
        # Cycles before each access, as a UART frame would take (over a thousand at
        # 115200 baud): at least the profile's select-to-record latency.
        self._latency = latency
        self.register_map = self.top.register_map
        self._requests, self._answers = collections.deque(), collections.deque()
        self._simulator = Simulator(self.top)
        self._simulator.add_clock(1e-6)
        self._simulator.add_testbench(self._world(seconds, seal_open), background=True)
        self._simulator.add_testbench(self._bus, background=True)

    def _world(self, seconds, seal_open):
        async def bench(ctx):
            ctx.set(self.top.seal_open, seal_open)
            previous = None
            for second in seconds:
                ctx.set(self.top.utc_seconds, second.utc)
                ctx.set(self.top.tick_ms, previous is not None and second.utc == previous + 1)
                ctx.set(self.top.import_wh, second.imported)
                ctx.set(self.top.export_wh, second.exported)
                await ctx.tick()
                ctx.set(self.top.tick_ms, 0)
                await ticks(ctx, CYCLES_PER_SECOND - 1)
                previous = second.utc
        return bench

    async def _bus(self, ctx):
        bus = self.top.bus
        while True:
            await ctx.tick()
            if not self._requests:
                continue
            write, address, payload = self._requests.popleft()
            await ticks(ctx, self._latency)
            ctx.set(bus.address, address)
            ctx.set(bus.write, write)
            ctx.set(bus.length, len(payload))
            ctx.set(bus.w_data, int.from_bytes(payload, "big"))
            ctx.set(bus.strobe, 1)
            status, data, length = ctx.get(bus.status), ctx.get(bus.r_data), ctx.get(bus.r_length)
            await ctx.tick()
            ctx.set(bus.strobe, 0)
            self._answers.append((status, data.to_bytes(self.register_map.data_width // 8, "big")
                                  [-length:] if length else b""))

    def _request(self, write: bool, name: str, payload: bytes = b"") -> bytes:
        self._requests.append((write, self.register_map.address_of(name), payload))
        while not self._answers:
            self._simulator.advance()
        status, data = self._answers.popleft()
        if status != Status.OK:
            raise MeterError(f"{name}: {Status(status).name}")
        return data

    def run(self, cycles: int) -> None:
        """Let the meter run on its own."""
        for _ in range(2 * cycles):  # two simulator steps per clock cycle
            self._simulator.advance()

    def read(self, name: str):
        return decode(self.register_map[name], self._request(False, name))

    def write(self, name: str, value) -> None:
        self._request(True, name, encode(self.register_map[name], value))

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        pass


def test_registers_through_the_bank():
    """The bank sees the profile's registers as declared: the interval is sealed,
    head and capacity read-only, a record is one 12-byte read."""
    seconds = steady_seconds(NOON - 1, 6, interval=1800, rng=random.Random(10))
    meter = SimulatedProfileMeter(seconds, capacity=16)
    assert profile_register_map().data_width == 96
    assert meter.read("profile_interval_s") == 1800
    with pytest.raises(MeterError, match="SEALED"):
        meter.write("profile_interval_s", 2)
    with pytest.raises(MeterError, match="READ_ONLY"):
        meter.write("profile_head", 0)
    assert meter.read("profile_capacity") == 16
    meter.run(8 * CYCLES_PER_SECOND)
    assert meter.read("profile_head") == 1  # 12:00:00 is a boundary of 1800 s
    meter.write("profile_select", 0)
    record = meter.read("profile_record")
    assert record.register.size == 12
    assert (record["end_seconds"], record["power_up"]) == (NOON, 1)

    opened = SimulatedProfileMeter(seconds, capacity=16, seal_open=True)
    opened.write("profile_interval_s", 2)
    assert opened.read("profile_interval_s") == 2


def test_read_profile_returns_the_ring_oldest_first_with_utc_times():
    """After the ring has wrapped, the host gets the newest `capacity` records in
    order, with aware UTC datetimes and each start taken from the previous end."""
    seconds = steady_seconds(NOON - 1, 16, interval=2, rng=random.Random(11))
    meter = SimulatedProfileMeter(seconds, capacity=4, seal_open=True)
    meter.write("profile_interval_s", 2)
    meter.run(17 * CYCLES_PER_SECOND)
    expected = expected_records(seconds)
    assert meter.read("profile_head") == len(expected) == 8
    progress = []

    records = read_profile(meter, progress=lambda done, total: progress.append((done, total)))

    assert [record.number for record in records] == [4, 5, 6, 7]
    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]
    utc = datetime.timezone.utc
    assert records[0].end == datetime.datetime(2025, 6, 1, 12, 0, 8, tzinfo=utc)
    assert records[0].start is None
    for previous, record, wanted in zip(records, records[1:], expected[5:]):
        assert record.start == previous.end
        assert record.end - record.start == datetime.timedelta(seconds=2)
        assert record.end.timestamp() == wanted["end_seconds"]
        assert (record.active_import_wh, record.active_export_wh) == (
            wanted["active_import_wh"], wanted["active_export_wh"])
        assert record.complete


def test_read_profile_while_the_meter_records():
    """A host slower than the meter (1 s intervals, about 0.7 s to read a record): the
    oldest records, overwritten before the host can prove it read them intact, are
    left out; every record returned is right; the newest are all there."""
    seconds = steady_seconds(NOON - 1, 150, interval=1, rng=random.Random(12))
    meter = SimulatedProfileMeter(seconds, capacity=32, seal_open=True, latency=LATENCY)
    meter.write("profile_interval_s", 1)
    meter.run(40 * CYCLES_PER_SECOND)
    expected = expected_records(seconds)
    head = meter.read("profile_head")

    records = read_profile(meter)

    numbers = [record.number for record in records]
    assert numbers == sorted(numbers) and numbers[-1] >= head - 1
    assert 0 < len(records) < 32, "some records were overwritten before the host read them"
    for previous, record in zip(records, records[1:]):
        assert (record.start is None) == (record.number != previous.number + 1)
    for record in records:
        wanted = expected[record.number]
        assert record.end.timestamp() == wanted["end_seconds"]
        assert (record.active_import_wh, record.active_export_wh) == (
            wanted["active_import_wh"], wanted["active_export_wh"])


class FakeRing:
    """A meter's profile registers in Python, for the host's arithmetic alone: record
    ``n`` ends at 12:00 + ``n mod 1000`` s, and each slot holds the newest record of
    its number modulo the capacity."""

    def __init__(self, head: int, capacity: int):
        self.register_map = profile_register_map()
        self.head, self.capacity, self.select = head, capacity, 0

    def read(self, name: str):
        if name == "profile_head":
            return self.head
        if name == "profile_capacity":
            return self.capacity
        assert name == "profile_record"
        newest = (self.head - 1 - (self.head - 1 - self.select) % self.capacity) % MODULUS
        return decode(self.register_map[name], encode(self.register_map[name], {
            "end_seconds": NOON + newest % 1000, "active_import_wh": newest % 97}))

    def write(self, name: str, value: int) -> None:
        assert name == "profile_select"
        self.select = value


def test_read_profile_across_the_record_number_wrapping():
    """Record numbers wrap at 2**32 like ``profile_head``: the reader numbers records
    modulo 2**32, oldest first."""
    records = read_profile(FakeRing(head=3, capacity=8))
    assert [record.number for record in records] == [0, 1, 2]
    records = read_profile(FakeRing(head=MODULUS - 2, capacity=4))
    assert [record.number for record in records] == [MODULUS - 6, MODULUS - 5, MODULUS - 4,
                                                     MODULUS - 3]
    assert [record.end.timestamp() - NOON for record in records] == [
        (MODULUS - 6) % 1000, (MODULUS - 5) % 1000, (MODULUS - 4) % 1000, (MODULUS - 3) % 1000]
    assert records[1].start == records[0].end


def test_read_profile_refuses_a_map_without_a_profile():
    class NoProfile:
        register_map = RegisterMap()

    with pytest.raises(MeterError, match="no load profile"):
        read_profile(NoProfile())


# --- The CLI -----------------------------------------------------------------------------------

@pytest.fixture
def profile_meter(monkeypatch):
    """`refmeter profile` against a simulated profile with four records."""
    seconds = steady_seconds(NOON - 1, 8, interval=2, rng=random.Random(13))
    meter = SimulatedProfileMeter(seconds, capacity=8, seal_open=True)
    meter.write("profile_interval_s", 2)
    meter.run(9 * CYCLES_PER_SECOND)
    monkeypatch.setattr(cli, "_open_meter", lambda args: meter)
    return meter


def test_cli_profile_json(profile_meter, capsys):
    assert cli.main(["--url", "sim:profile", "profile", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["url"] == "sim:profile"
    assert [record["end"] for record in document["records"]] == [
        "2025-06-01T12:00:00+00:00", "2025-06-01T12:00:02+00:00", "2025-06-01T12:00:04+00:00",
        "2025-06-01T12:00:06+00:00"]
    assert document["records"][1]["start"] == "2025-06-01T12:00:00+00:00"
    assert document["records"][0]["power_up"] is True


def test_cli_profile_csv(profile_meter, capsys):
    assert cli.main(["--url", "sim:profile", "profile", "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 4
    assert rows[0]["start"] == "" and rows[0]["power_up"] == "1" and rows[1]["power_up"] == "0"
    assert rows[2]["end"] == "2025-06-01T12:00:04+00:00"


def test_cli_profile_table(profile_meter, capsys):
    assert cli.main(["--url", "sim:profile", "profile"]) == 0
    out = capsys.readouterr().out
    assert "4 load-profile records" in out and "power_up,interval_changed" in out


def test_cli_profile_help_has_examples(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["profile", "--help"])
    assert exit_info.value.code == 0
    _, examples = capsys.readouterr().out.split("examples:", 1)
    assert " profile --csv" in examples and " profile --json" in examples
