"""The host package (transport, link, device API) against simulated meters."""

import random
import socket
import threading
import time

import pytest

from refmeter.gateware.hostlink.protocol import SOF, Status
from refmeter.gateware.meter import DEMO_METER_ID, gateware_version, source_revision
from refmeter.gateware.registers import Access, Register, RegisterMap
from refmeter.sim.simulators import open_simulation
from refmeter.soft.device import Meter
from refmeter.soft.errors import MeterError, NoReply, RequestRefused
from refmeter.soft.link import encode_request
from refmeter.soft.registers import METER_REGISTERS
from refmeter.soft.transport import SerialTransport, Transport

from conftest import require_simulator


def test_identity_is_what_the_gateware_was_built_with(meter):
    """The identity block reports the build's EUI-64, version, commit and map."""
    identity = meter.identity()
    assert identity.meter_id == DEMO_METER_ID
    assert identity.eui64 == "02-52-45-46-00-00-00-01"
    assert identity.gateware_version == gateware_version()
    assert identity.build_hash == source_revision()
    assert identity.register_map_hash == METER_REGISTERS.fingerprint()
    assert meter.check_register_map() == identity


def test_scratch_keeps_what_is_written(meter):
    """Every value written to the rw scratch register reads back unchanged."""
    rng = random.Random(2)
    for value in (0, 0xFFFF_FFFF, *(rng.getrandbits(32) for _ in range(4))):
        meter.write("scratch", value)
        assert meter.read("scratch") == value


def test_refused_write_changes_nothing_and_is_counted(meter):
    """A write to a read-only register is refused, changes nothing, counts once."""
    before = meter.link_status().rejected_frames
    with pytest.raises(RequestRefused, match=r"refused to write meter_id \(0x0000\): READ_ONLY") as refusal:
        meter.write("meter_id", 0x1234)
    assert refusal.value.status is Status.READ_ONLY
    assert meter.read("meter_id") == DEMO_METER_ID
    assert meter.link_status().rejected_frames == before + 1


def test_value_that_does_not_fit_is_refused_on_the_host(meter):
    """A value wider than the register never leaves the host."""
    before = meter.link_status()
    with pytest.raises(ValueError, match=r"does not fit scratch \(32 bits\)"):
        meter.write("scratch", 1 << 32)
    with pytest.raises(ValueError, match="has no field"):
        meter.write("link_status", {"no_such_field": 1})
    assert meter.link_status() == before


def test_clock_starts_at_host_time_and_runs(meter):
    """The simulated clock starts at the host's UTC time and moves forward."""
    first = meter.utc_time()
    assert abs(first.timestamp() - time.time()) < 60
    # A millisecond of simulated time takes several reads in the Amaranth simulator.
    later = [meter.utc_time() for _ in range(30)]
    assert later == sorted(later) and later[-1] > first


def test_register_map_mismatch_is_reported(simulator):
    """A host whose map differs from the gateware's refuses to go on, naming both."""
    other_map = RegisterMap()
    for address, register in METER_REGISTERS:
        other_map.add(address, register)
    other_map.add(0x7000, Register.number("extra", Access.RW, 8, "not in the gateware"))
    with Meter(open_simulation(simulator), timeout=5, register_map=other_map) as meter:
        with pytest.raises(MeterError, match=f"{METER_REGISTERS.fingerprint():#010x}.*"
                                             f"{other_map.fingerprint():#010x}"):
            meter.check_register_map()


class CorruptingTransport(Transport):
    """Flips one bit in the first ``count`` replies of a real transport (line noise)."""

    def __init__(self, inner: Transport, count: int):
        self._inner, self._left = inner, count
        self.url = inner.url

    def write(self, data: bytes) -> None:
        self._inner.write(data)

    def read(self, size: int, timeout: float) -> bytes:
        data = self._inner.read(size, timeout)
        if data and data != bytes([SOF]) and self._left:
            self._left -= 1
            data = bytes([data[0] ^ 0x10]) + data[1:]
        return data

    def discard_input(self) -> None:
        self._inner.discard_input()

    def close(self) -> None:
        self._inner.close()


def test_corrupted_reply_is_retried(simulator):
    """A reply that fails its CRC is asked for again and the request still succeeds."""
    transport = CorruptingTransport(open_simulation(simulator), count=2)
    with Meter(transport, timeout=5, tries=3) as meter:
        assert meter.read("meter_id") == DEMO_METER_ID


def test_corrupted_reply_on_the_only_try_is_no_reply(simulator):
    """With one try, a corrupted reply ends in a NoReply naming the meter."""
    transport = CorruptingTransport(open_simulation(simulator), count=1)
    with Meter(transport, timeout=2, tries=1) as meter:
        with pytest.raises(NoReply, match=f"no reply from meter at sim:{simulator} after 1 try"):
            meter.read("meter_id")


@pytest.fixture
def silent_peer():
    """A TCP peer that accepts a connection and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    connections = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                connections.append(listener.accept()[0])
            except TimeoutError:
                pass
    thread = threading.Thread(target=accept)
    thread.start()
    yield f"socket://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in connections:
        connection.close()
    listener.close()


def test_silent_meter_gives_a_clear_no_reply(silent_peer):
    """No answer at all: the error names the URL and the number of tries."""
    with Meter(SerialTransport(silent_peer), timeout=0.1, tries=3) as meter:
        with pytest.raises(NoReply, match=f"^no reply from meter at {silent_peer} after 3 tries$"):
            meter.read("scratch")


def _drain(transport: Transport, quiet: float, budget: float) -> bytes:
    """Everything the meter sends until it has been quiet for ``quiet`` seconds."""
    received, deadline = bytearray(), time.monotonic() + budget
    while time.monotonic() < deadline:
        data = transport.read(4096, quiet)
        if not data:
            return bytes(received)
        received += data
    raise AssertionError(f"the meter was still talking after {budget} s")


def test_simulators_agree_byte_for_byte():
    """Amaranth and Verilator runs of the meter answer any byte stream identically."""
    require_simulator("verilator")
    rng = random.Random(7)
    stream = bytearray()
    for _ in range(12):
        stream += bytes(rng.choice([SOF, rng.randrange(256)]) for _ in range(rng.randrange(20)))
        # Not utc_time: the two runs read it at different simulated instants.
        stream += encode_request(rng.choice([1, 2, 3]), rng.choice([0x0000, 0x0010, 0x0011, 0x7777]),
                                 rng.randbytes(rng.choice([0, 4, 8])))
    answers = {}
    for simulator in ("amaranth", "verilator"):
        with open_simulation(simulator) as transport:
            transport.write(bytes(stream))
            answers[simulator] = _drain(transport, quiet=1.0, budget=60)
    assert answers["amaranth"], "the stream provoked no answer at all"
    assert answers["amaranth"] == answers["verilator"]
