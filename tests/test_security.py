"""The security unit in the Amaranth simulator: key slots, authenticated writes,
anti-replay and sealed readings, against frames the host builds with the
``cryptography`` library (``refmeter.soft.security``), never against the
gateware's own idea of them.

The unit sits on a register bank with a few registers of its own kind beside the
unit's: ``clock`` takes authenticated writes from the local host only, ``gain``
wants the seal open, ``scratch`` takes anything. The bench is the host: it speaks
frames to the host-link bridge, which also makes the unit's authenticated writes.
"""

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateware_helpers import run_simulation
from refmeter.gateware.hostlink.bridge import FrameBridge
from refmeter.gateware.hostlink.protocol import (CRC_SIZE, RESPONSE_HEADER_SIZE, Command,
                                                 Status)
from refmeter.gateware.registers import (Access, Guard, Register, RegisterBank, RegisterMap,
                                         connect_registers)
from refmeter.gateware.security.authority import Authority
from refmeter.gateware.security.frames import SEALED_BYTES, TAG_BYTES, SealKind, system_title
from refmeter.gateware.security.unit import SecurityResult, SecurityUnit
from refmeter.soft.link import encode_request
from refmeter.soft.registers import decode, encode
from refmeter.soft.security import KeySet, SealedReading, build_command

METER_ID = 0x02_52_45_46_00_00_00_2A
TITLE = system_title(METER_ID)
SENDER = b"HEADEND1"
PROFILE_RECORD = 0x0123_4567_89AB_CDEF_0011_2233
UTC, IMPORT_WH, EXPORT_WH = 1_790_000_000, 123_456, 789


def _map() -> RegisterMap:
    register_map = RegisterMap()
    register_map.add(0x0000, Register.number("scratch", Access.RW, 32, "anything"))
    register_map.add(0x0001, Register.number("gain", Access.RW, 16, "calibration",
                                             guard=Guard.SEAL))
    register_map.add(0x0002, Register.number("clock", Access.WO, 32, "set the clock",
                                             guard=Guard.AUTHENTICATED,
                                             authorities={Authority.LOCAL}))
    register_map.add_block(0x0100, SecurityUnit.REGISTERS)
    return register_map


class Top(wiring.Component):
    """Bank, bridge and unit; the bench plays the host on the bridge's byte streams."""

    def __init__(self):
        self.register_map = _map()
        self.unit = SecurityUnit(meter_id=METER_ID)
        self.bank = RegisterBank(self.register_map, stores=self.unit.stores)
        self.bridge = FrameBridge(data_width=self.register_map.data_width, frame_timeout=1000)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.bank, m.submodules.bridge, m.submodules.unit = \
            self.bank, self.bridge, self.unit
        wiring.connect(m, self.bridge.bus, self.bank.bus)
        wiring.connect(m, self.unit.local, self.bridge.local)
        wiring.connect(m, self.bank.security_store, self.unit.security_store)
        connect_registers(m, self.bank, self.unit, self.unit.registers)
        m.d.comb += [
            self.unit.profile_record.eq(PROFILE_RECORD),
            self.unit.utc_seconds.eq(UTC),
            self.unit.import_wh.eq(IMPORT_WH),
            self.unit.export_wh.eq(EXPORT_WH),
        ]
        return m


class Host:
    """Register reads and writes in frames, and what the ``clock`` register was told."""

    def __init__(self, ctx, top: Top):
        self.ctx, self.top = ctx, top
        self.clock_writes: list[int] = []
        ctx.set(top.bridge.tx.ready, 1)

    async def tick(self):
        if self.ctx.get(self.top.bank.clock.written):
            self.clock_writes.append(self.ctx.get(self.top.bank.clock.data.value))
        await self.ctx.tick()

    async def access(self, name: str, value=None) -> tuple[Status, object]:
        register_map, bridge = self.top.register_map, self.top.bridge
        register = register_map[name]
        data = encode(register, value) if value is not None else b""
        frame = encode_request(Command.WRITE if value is not None else Command.READ,
                               register_map.address_of(name), data)
        response = bytearray()
        for byte in frame:
            self.ctx.set(bridge.rx.payload, byte)
            self.ctx.set(bridge.rx.valid, 1)
            while not self.ctx.get(bridge.rx.ready):
                await self.tick()
            await self.tick()
        self.ctx.set(bridge.rx.valid, 0)
        while len(response) < RESPONSE_HEADER_SIZE or \
                len(response) < RESPONSE_HEADER_SIZE + response[1] + CRC_SIZE:
            if self.ctx.get(bridge.tx.valid):
                response.append(self.ctx.get(bridge.tx.payload))
            await self.tick()
        status = Status(response[3])
        payload = bytes(response[RESPONSE_HEADER_SIZE:-CRC_SIZE])
        return status, (decode(register, payload) if value is None and status is Status.OK
                        else None)

    async def read(self, name: str):
        status, value = await self.access(name)
        assert status is Status.OK, f"read {name}: {status}"
        return value

    async def write(self, name: str, value) -> Status:
        return (await self.access(name, value))[0]

    async def idle(self, cycles: int = 40_000):
        """Until the unit is idle (a command takes several thousand cycles)."""
        for _ in range(cycles):
            await self.tick()
            if not self.ctx.get(self.top.unit.security_status.busy):
                return
        raise AssertionError("the security unit is still busy")

    async def provision(self, keys: KeySet, *, seal_open: bool = True) -> list[Status]:
        self.ctx.set(self.top.bank.seal_open, seal_open)
        statuses = [await self.write(f"key_{a.slot_name}", int.from_bytes(key, "big"))
                    for a, key in keys.keys.items()]
        self.ctx.set(self.top.bank.seal_open, 0)
        return statuses

    async def command(self, frame) -> SecurityResult:
        """Send a command frame; return the unit's result once it is done."""
        assert await self.write("command_header", frame.header) is Status.OK
        assert await self.write("command_value", int.from_bytes(frame.ciphertext, "big")) is Status.OK
        assert await self.write("command_tag", int.from_bytes(frame.tag, "big")) is Status.OK
        await self.tick()
        await self.idle()
        return SecurityResult((await self.read("security_status"))["result"])

    async def counter(self, authority: Authority) -> int:
        return await self.read(f"invocation_counter_{authority.slot_name}")


def _command(keys: KeySet, authority: Authority, counter: int, register: str, value: int, *,
             key: bytes | None = None, sender: bytes = SENDER):
    register_map = _map()
    return build_command(key or keys.key(authority), meter_title=TITLE, authority=authority,
                         counter=counter, address=register_map.address_of(register),
                         value=encode(register_map[register], value), sender_title=sender)


def _run(bench):
    top = Top()

    async def testbench(ctx):
        await bench(Host(ctx, top))

    run_simulation(top, testbench)


KEYS = KeySet.generate(METER_ID)


def test_verified_command_writes_and_moves_the_counter_on():
    """A command under the local key writes the clock once, with the decrypted value;
    the slot's counter becomes the command's and the accepted count goes up."""
    async def bench(host: Host):
        assert await host.provision(KEYS) == [Status.OK] * len(Authority)
        assert (await host.read("security_status"))["provisioned"] == (1 << len(Authority)) - 1
        result = await host.command(_command(KEYS, Authority.LOCAL, 7, "clock", 1_800_000_000))
        assert result is SecurityResult.ACCEPTED
        assert host.clock_writes == [1_800_000_000]
        assert await host.counter(Authority.LOCAL) == 7
        status = await host.read("security_status")
        assert (status["commands_accepted"], status["commands_refused"]) == (1, 0)
        assert status["bus_status"] == Status.OK

    _run(bench)


def test_forged_commands_change_nothing():
    """A flipped bit anywhere (header, ciphertext, tag), another meter's title in the
    AAD, or another slot's key: BAD_TAG, nothing written, the counter unchanged."""
    async def bench(host: Host):
        await host.provision(KEYS)
        good = _command(KEYS, Authority.LOCAL, 5, "clock", 42)
        forgeries = [
            type(good)(good.header | {"address": good.header["address"] ^ 1}, good.ciphertext, good.tag),
            type(good)(good.header | {"invocation_counter": 6}, good.ciphertext, good.tag),
            type(good)(good.header | {"system_title": good.header["system_title"] ^ 1 << 63},
                       good.ciphertext, good.tag),
            type(good)(good.header, bytes([good.ciphertext[0] ^ 0x80]) + good.ciphertext[1:], good.tag),
            type(good)(good.header, good.ciphertext, good.tag[:-1] + bytes([good.tag[-1] ^ 1])),
            build_command(KEYS.key(Authority.LOCAL), meter_title=system_title(METER_ID + 1),
                          authority=Authority.LOCAL, counter=5, address=2,
                          value=(42).to_bytes(4, "big"), sender_title=SENDER),
            _command(KEYS, Authority.LOCAL, 5, "clock", 42, key=KEYS.key(Authority.SUPPLIER)),
        ]
        for number, forged in enumerate(forgeries, 1):
            assert await host.command(forged) is SecurityResult.BAD_TAG, number
            assert (await host.read("security_status"))["commands_refused"] == number
        assert host.clock_writes == [] and await host.counter(Authority.LOCAL) == 0
        assert await host.command(good) is SecurityResult.ACCEPTED
        assert host.clock_writes == [42]

    _run(bench)


def test_replayed_and_lowered_counters_are_refused_before_the_engine_runs():
    async def bench(host: Host):
        await host.provision(KEYS)
        first = _command(KEYS, Authority.LOCAL, 100, "clock", 1)
        assert await host.command(first) is SecurityResult.ACCEPTED
        assert await host.command(first) is SecurityResult.REPLAYED
        assert await host.command(_command(KEYS, Authority.LOCAL, 99, "clock", 2)) \
            is SecurityResult.REPLAYED
        # Counters are per slot: the supplier's starts from 0.
        assert await host.command(_command(KEYS, Authority.LOCAL, 101, "clock", 3)) \
            is SecurityResult.ACCEPTED
        assert host.clock_writes == [1, 3]
        status = await host.read("security_status")
        assert (status["commands_accepted"], status["commands_refused"]) == (2, 2)

    _run(bench)


def test_a_verified_command_the_bank_refuses_still_uses_up_its_counter():
    """The supplier may not set this clock: the command verifies, the bank answers
    FORBIDDEN, nothing is written, and the same command can never come back later."""
    async def bench(host: Host):
        await host.provision(KEYS)
        command = _command(KEYS, Authority.SUPPLIER, 3, "clock", 9)
        assert await host.command(command) is SecurityResult.REFUSED
        assert (await host.read("security_status"))["bus_status"] == Status.FORBIDDEN
        assert host.clock_writes == [] and await host.counter(Authority.SUPPLIER) == 3
        assert await host.command(command) is SecurityResult.REPLAYED
        # A sealed register wants the seal open, authenticated or not.
        assert await host.command(_command(KEYS, Authority.LOCAL, 1, "gain", 5)) \
            is SecurityResult.REFUSED
        assert (await host.read("security_status"))["bus_status"] == Status.SEALED

    _run(bench)


def test_commands_without_a_usable_slot_are_refused():
    async def bench(host: Host):
        command = _command(KEYS, Authority.LOCAL, 1, "clock", 1)
        assert await host.command(command) is SecurityResult.NO_KEY
        await host.provision(KEYS)
        bad_slot = type(command)(command.header | {"authority": 7}, command.ciphertext, command.tag)
        assert await host.command(bad_slot) is SecurityResult.BAD_AUTHORITY
        own = _command(KEYS, Authority.LOCAL, 1, "clock", 1, sender=TITLE)
        assert await host.command(own) is SecurityResult.OWN_TITLE
        assert host.clock_writes == []
        assert await host.command(command) is SecurityResult.ACCEPTED

    _run(bench)


def test_key_slots_are_write_only_and_sealed_and_never_readable():
    """With the seal closed a plain key write is SEALED and changes nothing; a key
    register cannot be read; no readable register shows any key's bytes."""
    async def bench(host: Host):
        assert await host.provision(KEYS, seal_open=False) == [Status.SEALED] * len(Authority)
        assert (await host.read("security_status"))["provisioned"] == 0
        await host.provision(KEYS)
        for authority in Authority:
            status, _ = await host.access(f"key_{authority.slot_name}")
            assert status is Status.WRITE_ONLY
        await host.command(_command(KEYS, Authority.LOCAL, 1, "clock", 1))
        await host.write("seal_request", SealKind.SNAPSHOT)
        await host.tick()
        await host.idle()
        shown = b""
        for _, register in host.top.register_map:
            if register.access.readable:
                shown += encode(register, await host.read(register.name))
        for key in KEYS.keys.values():
            for start in range(0, 16 - 4 + 1):
                assert key[start:start + 4] not in shown

    _run(bench)


def test_a_key_changes_only_under_its_own_current_key():
    """The local key changes by a command under the local key (its new value
    encrypted); then the old key's commands fail and the new key's pass. The supplier
    cannot change the local key."""
    new_local = bytes(range(16))
    async def bench(host: Host):
        await host.provision(KEYS)
        value = int.from_bytes(new_local, "big")
        assert await host.command(_command(KEYS, Authority.SUPPLIER, 1, "key_local", value)) \
            is SecurityResult.REFUSED
        assert (await host.read("security_status"))["bus_status"] == Status.FORBIDDEN
        assert await host.command(_command(KEYS, Authority.LOCAL, 1, "key_local", value)) \
            is SecurityResult.ACCEPTED
        assert await host.command(_command(KEYS, Authority.LOCAL, 2, "clock", 5)) \
            is SecurityResult.BAD_TAG
        assert await host.command(_command(KEYS, Authority.LOCAL, 2, "clock", 6,
                                           key=new_local)) is SecurityResult.ACCEPTED
        assert host.clock_writes == [6]

    _run(bench)


def test_zeroisation_erases_every_slot():
    """By a command (any slot) or a plain write with the seal open: every slot empty,
    commands and seals refused, counters kept (so re-provisioning cannot reopen a
    replay of the old counters)."""
    async def bench(host: Host):
        await host.provision(KEYS)
        assert await host.command(_command(KEYS, Authority.BROKER, 4, "zeroise_keys", 1)) \
            is SecurityResult.ACCEPTED
        await host.idle()
        assert (await host.read("security_status"))["provisioned"] == 0
        assert await host.command(_command(KEYS, Authority.LOCAL, 1, "clock", 1)) \
            is SecurityResult.NO_KEY
        assert await host.counter(Authority.BROKER) == 4
        assert await host.write("zeroise_keys", 1) is Status.SEALED
        await host.provision(KEYS)
        host.ctx.set(host.top.bank.seal_open, 1)
        assert await host.write("zeroise_keys", 1) is Status.OK
        await host.tick()
        await host.idle()
        assert (await host.read("security_status"))["provisioned"] == 0

    _run(bench)


@pytest.mark.parametrize("kind", list(SealKind))
def test_sealed_readings_verify_with_cryptography(kind):
    """Each seal's tag verifies under the reading key over the bytes shown, with a new
    counter each time; a changed byte or another key does not verify."""
    expected = (PROFILE_RECORD.to_bytes(SEALED_BYTES, "big") if kind is SealKind.PROFILE_RECORD
                else UTC.to_bytes(4, "big") + IMPORT_WH.to_bytes(4, "big")
                + EXPORT_WH.to_bytes(4, "big"))

    async def bench(host: Host):
        await host.write("seal_request", kind)
        await host.tick()
        await host.idle()
        assert (await host.read("security_status"))["result"] == SecurityResult.NO_KEY
        assert (await host.read("reading_seal"))["counter"] == 0
        await host.provision(KEYS)
        for counter in (1, 2):
            assert await host.write("seal_request", kind) is Status.OK
            await host.tick()
            await host.idle()
            seal = await host.read("reading_seal")
            data = (await host.read("sealed_reading")).to_bytes(SEALED_BYTES, "big")
            assert data == expected and seal["counter"] == counter
            reading = SealedReading(METER_ID, kind, data, seal["counter"],
                                    seal["tag"].to_bytes(TAG_BYTES, "big"))
            reading.verify(KEYS.key(Authority.READING))
            with pytest.raises(Exception, match="does not verify"):
                SealedReading(METER_ID, kind, bytes([data[0] ^ 1]) + data[1:], reading.counter,
                              reading.tag).verify(KEYS.key(Authority.READING))
            with pytest.raises(Exception, match="does not verify"):
                reading.verify(KEYS.key(Authority.LOCAL))
        assert (await host.read("security_status"))["commands_accepted"] == 0
        # A kind the unit does not know seals nothing.
        await host.write("seal_request", 7)
        await host.tick()
        await host.idle()
        assert (await host.read("security_status"))["result"] == SecurityResult.UNKNOWN_KIND
        assert (await host.read("reading_seal"))["counter"] == 2

    _run(bench)


def test_random_commands_against_a_model():
    """Random commands over random slots, counters, registers and values, a third of
    them corrupted: every result, write and counter is the model's."""
    rng = random.Random(3)
    registers = {"clock": {Authority.LOCAL}, "scratch": set(Authority), "gain": set()}

    async def bench(host: Host):
        await host.provision(KEYS)
        counters = {authority: 0 for authority in Authority}
        expected_writes = []
        for _ in range(40):
            authority = rng.choice(list(Authority))
            register = rng.choice(list(registers))
            counter = max(1, counters[authority] + rng.randint(-2, 3))
            value = rng.getrandbits(16 if register == "gain" else 32)
            frame = _command(KEYS, authority, counter, register, value)
            corrupt = rng.random() < 1 / 3
            if corrupt:
                frame = type(frame)(frame.header, frame.ciphertext,
                                    bytes([frame.tag[0] ^ 1 << rng.randrange(8)]) + frame.tag[1:])
            if counter <= counters[authority]:
                expected = SecurityResult.REPLAYED
            elif corrupt:
                expected = SecurityResult.BAD_TAG
            else:
                counters[authority] = counter
                expected = (SecurityResult.ACCEPTED if authority in registers[register]
                            else SecurityResult.REFUSED)
                if expected is SecurityResult.ACCEPTED and register == "clock":
                    expected_writes.append(value)
                if expected is SecurityResult.ACCEPTED and register == "scratch":
                    assert await host.command(frame) is expected
                    assert await host.read("scratch") == value
                    continue
            assert await host.command(frame) is expected
        assert host.clock_writes == expected_writes
        for authority in Authority:
            assert await host.counter(authority) == counters[authority]

    _run(bench)


def test_a_command_cannot_be_changed_while_it_runs():
    """Header writes while the unit works on a command are dropped, and a tag written
    then counts as refused (BUSY): what is written is what was verified."""
    async def bench(host: Host):
        await host.provision(KEYS)
        frame = _command(KEYS, Authority.LOCAL, 1, "clock", 77)
        for name, value in (("command_header", frame.header),
                            ("command_value", int.from_bytes(frame.ciphertext, "big")),
                            ("command_tag", int.from_bytes(frame.tag, "big"))):
            await host.write(name, value)
        await host.tick()
        assert host.ctx.get(host.top.unit.security_status.busy)
        await host.write("command_header", frame.header | {"address": 0})
        await host.write("command_tag", int.from_bytes(frame.tag, "big"))
        await host.idle()
        assert host.clock_writes == [77] and await host.read("scratch") == 0
        status = await host.read("security_status")
        assert SecurityResult(status["result"]) is SecurityResult.ACCEPTED
        assert (status["commands_accepted"], status["commands_refused"]) == (1, 1)

    _run(bench)


def test_key_file_round_trip_and_errors(tmp_path):
    """A saved key set loads back equal, is readable by its owner only, is never
    overwritten, and a damaged file is a clear error; repr shows no key."""
    path = tmp_path / "keys.json"
    KEYS.save(path)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert KeySet.load(path) == KEYS
    with pytest.raises(FileExistsError):
        KEYS.save(path)
    assert all(key.hex() not in repr(KEYS) for key in KEYS.keys.values())
    path.write_text('{"meter_id": "01", "keys": {"supplier": "00"}}')
    with pytest.raises(ValueError, match="supplier key is 1 bytes"):
        KeySet.load(path)
    path.write_text('{"meter_id": "01", "keys": {"landlord": "00"}}')
    with pytest.raises(ValueError, match="unknown slots landlord"):
        KeySet.load(path)


def test_command_frames_match_an_independent_gcm():
    """The host's frame is AES-GCM as `cryptography` computes it over the documented
    bytes (written out here, not taken from frames.py), its tag the first 12 bytes."""
    key = bytes(range(16, 32))
    frame = build_command(key, meter_title=TITLE, authority=Authority.BROKER, counter=0x01020304,
                          address=0x0101, value=b"\xAB\xCD", sender_title=SENDER)
    nonce = SENDER + b"\x01\x02\x03\x04"
    aad = b"\x30" + TITLE + b"\x01" + b"\x01\x01" + b"\x02"
    sealed = AESGCM(key).encrypt(nonce, bytes(14) + b"\xAB\xCD", aad)
    assert frame.ciphertext == sealed[:16] and frame.tag == sealed[16:28]
    assert TITLE == b"RFM" + METER_ID.to_bytes(8, "big")[3:]
