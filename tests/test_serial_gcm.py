# amaranth: UnusedElaboratable=no
"""The byte-serial AES-GCM engine against published vectors and the `cryptography` package.

Expected values come from the GCM specification's test cases, NIST's CAVP files, the
Green Book example (all imported from tests/test_gcm.py) or `cryptography`'s AES-GCM,
never from the code under test. The engine runs behind :class:`KeyedEngine`, which
gives it a key RAM like its owner's; the ``extended`` test sends thousands of random
messages through the Verilog under cocotb and Verilator (``sim/benches/serial_gcm.py``).
"""

import json
import random
from dataclasses import dataclass

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from gateware_helpers import run_simulation
from refmeter.gateware.aes import SerialAesGcm, serial_gcm_cycles
from refmeter.sim.benches import run_bench
from test_gcm import (GCM_SPEC_CASES, GREEN_BOOK_APDU, GREEN_BOOK_AUTH_KEY, GREEN_BOOK_CIPHERTEXT,
                      GREEN_BOOK_GMAC_AAD, GREEN_BOOK_GMAC_TAG, GREEN_BOOK_IV, GREEN_BOOK_KEY,
                      GREEN_BOOK_TAG, _cavp_vectors, gcm_reference)

#: Keys the bench's key RAM holds at once.
KEY_SLOTS = 8


class KeyedEngine(wiring.Component):
    """A :class:`SerialAesGcm` with a key RAM of :data:`KEY_SLOTS` keys, as its owner
    would give it: ``key_slot`` is taken with each header and names the key the
    engine reads until the result; ``key_write_*`` writes the RAM a byte at a time
    (for the Verilog bench; the Amaranth bench sets the RAM's contents directly)."""

    def __init__(self, **parameters):
        self.engine = SerialAesGcm(**parameters)
        self.keys = Memory(shape=8, depth=16 * KEY_SLOTS, init=[])
        super().__init__({
            "key_slot": In(range(KEY_SLOTS)),
            "key_write_addr": In(range(16 * KEY_SLOTS)),
            "key_write_data": In(8),
            "key_write_en": In(1),
            "message": In(stream.Signature(self.engine.message.payload.shape())),
            "data": In(stream.Signature(8)),
            "output": Out(stream.Signature(8)),
            "result": Out(stream.Signature(SerialAesGcm.RESULT_LAYOUT)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = engine = self.engine
        m.submodules.keys = keys = self.keys
        slot = Signal(range(KEY_SLOTS))
        read, write = keys.read_port(), keys.write_port()
        m.d.comb += [
            read.addr.eq(engine.key.addr | (slot << 4)),
            read.en.eq(engine.key.en),
            engine.key.data.eq(read.data),
            write.addr.eq(self.key_write_addr),
            write.data.eq(self.key_write_data),
            write.en.eq(self.key_write_en),
        ]
        with m.If(self.message.valid & self.message.ready):
            m.d.sync += slot.eq(self.key_slot)
        wiring.connect(m, wiring.flipped(self.message), engine.message)
        wiring.connect(m, wiring.flipped(self.data), engine.data)
        wiring.connect(m, engine.output, wiring.flipped(self.output))
        wiring.connect(m, engine.result, wiring.flipped(self.result))
        return m


@dataclass
class Message:
    """One message for the engine, and what `cryptography` says it should answer."""

    key: bytes
    iv: bytes
    aad: bytes
    payload: bytes
    decrypt: bool = False
    verify: bool = False
    #: With ``verify``: the expected tag sent, None for the right one.
    sent_tag: "bytes | None" = None

    def answer(self, tag_bytes: int) -> tuple[bytes, bool]:
        """(output bytes, tag_ok)."""
        output, tag = gcm_reference(self.key, self.iv, self.aad, self.payload,
                                    decrypt=self.decrypt)
        if self.verify:
            return output, self.expected_tag(tag_bytes) == tag[:tag_bytes]
        return output + tag[:tag_bytes], False

    def expected_tag(self, tag_bytes: int) -> bytes:
        if self.sent_tag is not None:
            return self.sent_tag
        return gcm_reference(self.key, self.iv, self.aad, self.payload,
                             decrypt=self.decrypt)[1][:tag_bytes]

    def data(self, tag_bytes: int) -> bytes:
        """The bytes of the ``data`` stream."""
        tag = self.expected_tag(tag_bytes) if self.verify else b""
        return self.iv + self.aad + self.payload + tag


@dataclass
class Answer:
    output: bytes = b""
    tag_ok: bool = False
    started: int = 0        # the cycle the header was taken
    finished: int = 0       # the cycle the result was taken


def random_message(rng: random.Random, key: bytes, tag_bytes: int, *, max_length=40) -> Message:
    """Lengths from empty to a few blocks, partial final blocks likely; both directions,
    tags produced and verified, a third of the verified ones wrong."""
    def length():
        return rng.choice([0, 16, rng.randrange(1, max_length + 1)])
    message = Message(key, rng.randbytes(12), rng.randbytes(length()), rng.randbytes(length()),
                      decrypt=rng.random() < 0.5, verify=rng.random() < 0.5)
    if message.verify and rng.random() < 1 / 3:
        wrong = bytearray(message.expected_tag(tag_bytes))
        wrong[rng.randrange(tag_bytes)] ^= 1 << rng.randrange(8)
        message.sent_tag = bytes(wrong)
    return message


def run_messages(dut: KeyedEngine, messages: list[Message], *, gaps: float = 0.0,
                 ready: float = 1.0, seed: int = 1, one_key_slot: bool = False) -> list[Answer]:
    """Send ``messages`` through ``dut``, check every answer against `cryptography` and
    return them.

    Each key gets a slot of its own, or with ``one_key_slot`` every message uses slot
    0 and the bench rewrites it with the next message's key as each result is taken
    (the engine takes the next header in the following cycle). Headers are offered
    as soon as the previous one is taken and data bytes back to back regardless of
    headers, as a real sender would; ``gaps`` is the chance that the sender pauses
    (1-3 cycles) after a byte, ``ready`` the chance that ``output`` and ``result``
    are ready in a cycle. Every cycle the bench also checks that ``output.payload``
    and ``result.payload`` are zero while not valid. One testbench process does it
    all, one Python wake-up a cycle.
    """
    tag_bytes = dut.engine.tag_bytes
    rng = random.Random(seed)
    slots = {}
    for message in messages:
        slots.setdefault(message.key, 0 if one_key_slot else len(slots))
    assert len(slots) <= KEY_SLOTS or one_key_slot
    stream_bytes = b"".join(message.data(tag_bytes) for message in messages)
    answers = [Answer() for _ in messages]

    def store_key(ctx, message):
        for index, byte in enumerate(message.key):
            ctx.set(dut.keys.data[16 * slots[message.key] + index], byte)

    async def bench(ctx):
        for message in messages[:1] if one_key_slot else {m.key: m for m in messages}.values():
            store_key(ctx, message)
        cycle = headed = offered = answered = pause = 0
        output = bytearray()
        driven = {}

        def drive(signal, value):
            # Each ctx.set settles the design again: set only what changes.
            if driven.get(id(signal)) != value:
                ctx.set(signal, value)
                driven[id(signal)] = value

        # Python attribute look-ups on the interfaces cost more than the design: once.
        sampled = (dut.message.ready, dut.data.ready, dut.output.valid, dut.output.payload,
                   dut.result.valid, dut.result.payload.tag_ok)
        key_slot, header, header_valid = dut.key_slot, dut.message.payload, dut.message.valid
        data, data_valid = dut.data.payload, dut.data.valid
        output_ready, result_ready = dut.output.ready, dut.result.ready
        output_valid = result_valid = True
        while answered < len(messages):
            if headed < len(messages):
                message = messages[headed]
                drive(key_slot, slots[message.key])
                drive(header, {
                    "aad_bytes": len(message.aad), "payload_bytes": len(message.payload),
                    "decrypt": int(message.decrypt), "verify": int(message.verify)})
            offering = headed < len(messages)
            sending = offered < len(stream_bytes) and pause == 0
            drive(header_valid, int(offering))
            drive(data_valid, int(sending))
            if sending:
                drive(data, stream_bytes[offered])
            # A new chance of being ready only while something is offered.
            if output_valid:
                taking_output = rng.random() < ready
                drive(output_ready, int(taking_output))
            if result_valid:
                taking_result = rng.random() < ready
                drive(result_ready, int(taking_result))
            _, _, header_ready, data_ready, output_valid, output_byte, result_valid, tag_ok = \
                await ctx.tick().sample(*sampled)
            cycle += 1
            assert output_valid or output_byte == 0, f"output shows {output_byte:#04x}"
            assert result_valid or tag_ok == 0
            if offering and header_ready:
                answers[headed].started = cycle
                headed += 1
            pause = max(pause - 1, 0)
            if sending and data_ready:
                offered += 1
                if rng.random() < gaps:
                    pause = rng.randrange(1, 4)
            if output_valid and taking_output:
                output.append(output_byte)
            if result_valid and taking_result:
                answer = answers[answered]
                answer.output, answer.tag_ok, answer.finished = bytes(output), bool(tag_ok), cycle
                output.clear()
                answered += 1
                if one_key_slot and answered < len(messages):
                    store_key(ctx, messages[answered])
        assert offered == len(stream_bytes)

    run_simulation(dut, bench)
    for index, (message, answer) in enumerate(zip(messages, answers)):
        assert (answer.output, answer.tag_ok) == message.answer(tag_bytes), (index, message)
    return answers


# --- Known answers ---------------------------------------------------------------------

def test_gcm_spec_test_cases():
    """The GCM specification's AES-128 cases 1-4, back to back: each gives its ciphertext
    and tag, and its ciphertext decrypts to the plaintext with the tag verified."""
    messages = []
    for vector in GCM_SPEC_CASES.values():
        key, iv, aad = (bytes.fromhex(x) for x in (vector.key, vector.iv, vector.aad))
        plaintext, ciphertext = bytes.fromhex(vector.plaintext), bytes.fromhex(vector.ciphertext)
        messages += [Message(key, iv, aad, plaintext),
                     Message(key, iv, aad, ciphertext, decrypt=True, verify=True,
                             sent_tag=bytes.fromhex(vector.tag))]
    answers = run_messages(KeyedEngine(), messages)
    for vector, produced, verified in zip(GCM_SPEC_CASES.values(), answers[::2], answers[1::2]):
        assert produced.output.hex() == vector.ciphertext + vector.tag
        assert verified.output.hex() == vector.plaintext and verified.tag_ok


def test_green_book_suite0_example():
    """DESIGN.md's Green Book example with the meter's 12-byte tag: security control 0x30
    gives the published ciphertext and tag, and back to the APDU with the tag
    verified; authentication only (0x10, AAD = 0x10 || AK || APDU) produces and
    verifies `cryptography`'s GMAC."""
    messages = [
        Message(GREEN_BOOK_KEY, GREEN_BOOK_IV, b"\x30" + GREEN_BOOK_AUTH_KEY, GREEN_BOOK_APDU),
        Message(GREEN_BOOK_KEY, GREEN_BOOK_IV, b"\x30" + GREEN_BOOK_AUTH_KEY,
                GREEN_BOOK_CIPHERTEXT, decrypt=True, verify=True, sent_tag=GREEN_BOOK_TAG),
        Message(GREEN_BOOK_KEY, GREEN_BOOK_IV, GREEN_BOOK_GMAC_AAD, b""),
        Message(GREEN_BOOK_KEY, GREEN_BOOK_IV, GREEN_BOOK_GMAC_AAD, b"", verify=True),
    ]
    answers = run_messages(KeyedEngine(tag_bytes=12), messages)
    assert answers[0].output == GREEN_BOOK_CIPHERTEXT + GREEN_BOOK_TAG
    assert answers[1].output == GREEN_BOOK_APDU and answers[1].tag_ok
    assert answers[2].output == GREEN_BOOK_GMAC_TAG and answers[3].tag_ok


def cavp_messages(tag_bits: int, per_section: int, *, most_bytes: int = 255) -> list[Message]:
    """NIST's CAVP AES-128 GCM vectors with a 96-bit IV and ``tag_bits`` tags, the first
    ``per_section`` of each section whose lengths fit ``most_bytes``: the encryption
    vectors produced, the decryption vectors verified (some with NIST's FAIL: a
    wrong tag, which `cryptography`'s verdict agrees with)."""
    messages = [Message(v["Key"], v["IV"], v["AAD"], v["PT"])
                for v in _cavp_vectors("gcmEncryptExtIV128.rsp", tag_bits, per_section)]
    messages += [Message(v["Key"], v["IV"], v["AAD"], v["CT"], decrypt=True, verify=True,
                         sent_tag=v["Tag"])
                 for v in _cavp_vectors("gcmDecrypt128.rsp", tag_bits, per_section)]
    return [m for m in messages if max(len(m.aad), len(m.payload)) <= most_bytes]


def test_nist_cavp_vectors_short():
    """A few NIST CAVP vectors, short ones of each kind (authentication only, partial
    blocks, a whole block): the published ciphertext and tag, and the published
    verdict, a FAIL among them (the extended test runs every section under
    Verilator)."""
    cavp = {"gcmEncryptExtIV128.rsp": [], "gcmDecrypt128.rsp": []}
    for name, chosen in cavp.items():
        for vector in _cavp_vectors(name, 128, 1):
            if (len(vector["CT"]), len(vector["AAD"])) in [(0, 16), (13, 20), (16, 0)]:
                chosen.append(vector)
    assert [len(chosen) for chosen in cavp.values()] == [3, 3]
    messages = [Message(v["Key"], v["IV"], v["AAD"], v["PT"])
                for v in cavp["gcmEncryptExtIV128.rsp"]]
    messages += [Message(v["Key"], v["IV"], v["AAD"], v["CT"], decrypt=True, verify=True,
                         sent_tag=v["Tag"]) for v in cavp["gcmDecrypt128.rsp"]]
    answers = run_messages(KeyedEngine(), messages)
    for vector, answer in zip(cavp["gcmEncryptExtIV128.rsp"], answers):
        assert answer.output == vector["CT"] + vector["Tag"]
    for vector, answer in zip(cavp["gcmDecrypt128.rsp"], answers[3:]):
        assert answer.tag_ok == (not vector["fail"])
        if not vector["fail"]:
            assert answer.output == vector["PT"]


# --- Random cross-checks, verification, keys, cycles ----------------------------------

def test_random_messages_against_cryptography():
    """Random messages (empty to a few blocks, partial final blocks, both directions,
    tags produced and verified, some wrong), three keys, the sender pausing and the
    consumer not ready at random: every output byte and verdict is `cryptography`'s."""
    rng = random.Random(7)
    keys = [rng.randbytes(16) for _ in range(3)]
    messages = [random_message(rng, rng.choice(keys), 12, max_length=24) for _ in range(10)]
    messages.append(Message(keys[0], rng.randbytes(12), b"", b""))   # GMAC of nothing
    run_messages(KeyedEngine(tag_bytes=12), messages, gaps=0.3, ready=0.6, seed=8)


def test_wrong_tags_take_the_same_cycles_and_show_nothing():
    """The right tag and tags wrong in the first, a middle and the last byte, and
    wholly: the same cycles from header to result, tag_ok only for the right one,
    and ``output`` carries exactly the plaintext (never a tag byte; it shows zero
    whenever it is not valid, which run_messages checks every cycle)."""
    rng = random.Random(21)
    key, iv, aad, ciphertext = rng.randbytes(16), rng.randbytes(12), rng.randbytes(5), \
        rng.randbytes(3)
    tag = gcm_reference(key, iv, aad, ciphertext, decrypt=True)[1][:12]
    wrong = [bytes([tag[0] ^ 1]) + tag[1:], tag[:6] + bytes([tag[6] ^ 0x80]) + tag[7:],
             tag[:11] + bytes([tag[11] ^ 0x10]), bytes(12)]
    messages = [Message(key, iv, aad, ciphertext, decrypt=True, verify=True, sent_tag=sent)
                for sent in [None, *wrong]]
    answers = run_messages(KeyedEngine(tag_bytes=12), messages)
    assert [answer.tag_ok for answer in answers] == [True, False, False, False, False]
    assert len({answer.finished - answer.started for answer in answers}) == 1


def test_key_is_read_through_the_key_port():
    """One key slot, rewritten between messages: each message's output follows the key
    its owner holds at the time, so the engine reads it through ``key`` each time
    and keeps no copy of an earlier one."""
    rng = random.Random(5)
    keys = [rng.randbytes(16) for _ in range(2)]
    iv, aad, payload = rng.randbytes(12), rng.randbytes(3), rng.randbytes(4)
    messages = [Message(key, iv, aad, payload) for key in (keys[0], keys[1], keys[0])]
    answers = run_messages(KeyedEngine(), messages, one_key_slot=True)
    assert answers[0].output == answers[2].output != answers[1].output


@pytest.mark.parametrize("aad_bytes, payload_bytes, tag_bytes", [(13, 16, 12), (0, 0, 16),
                                                                 (17, 33, 4)])
def test_cycles_of_a_message(aad_bytes, payload_bytes, tag_bytes):
    """Data always valid and outputs always taken, a message takes serial_gcm_cycles'
    cycles from header to result, produced or verified; (13, 16, 12) is the meter's
    typical command, about 8,600 cycles (0.7 ms at 12 MHz)."""
    rng = random.Random(aad_bytes)
    key, iv = rng.randbytes(16), rng.randbytes(12)
    messages = [Message(key, iv, rng.randbytes(aad_bytes), rng.randbytes(payload_bytes),
                        decrypt=verify, verify=verify) for verify in (False, True)]
    answers = run_messages(KeyedEngine(tag_bytes=tag_bytes), messages)
    expected = serial_gcm_cycles(aad_bytes=aad_bytes, payload_bytes=payload_bytes,
                                 tag_bytes=tag_bytes)
    assert [answer.finished - answer.started for answer in answers] == [expected] * 2


@pytest.mark.parametrize("parameters, error", [
    (dict(tag_bytes=3), "tag_bytes"), (dict(tag_bytes=17), "tag_bytes"),
    (dict(tag_bytes=12.0), "tag_bytes"), (dict(length_bits=0), "length_bits"),
    (dict(length_bits=33), "length_bits"),
])
def test_parameters_are_checked(parameters, error):
    with pytest.raises(ValueError, match=error):
        SerialAesGcm(**parameters)


# --- Verilog under cocotb and Verilator ---------------------------------------------------

#: (tag_bytes, length_bits, random messages, longest AAD and payload in bytes): the
#: meter's configuration, the full tag, and 16-bit lengths with messages of hundreds
#: of bytes (more blocks than a byte of counter holds).
VERILATOR_RUNS = [(12, 8, 2_500, 70), (16, 8, 2_500, 70), (16, 16, 150, 700)]


@pytest.mark.slow
@pytest.mark.extended
@pytest.mark.parametrize("tag_bytes, length_bits, count, longest", VERILATOR_RUNS,
                         ids=[f"tag{t}-lengths{b}" for t, b, _, _ in VERILATOR_RUNS])
def test_verilog_against_cavp_vectors_and_cryptography(tag_bytes, length_bits, count, longest,
                                                        tmp_path, verilator_environment):
    """The engine's Verilog, compiled with Verilator: every NIST CAVP vector with a 96-bit
    IV and this tag length (15 a section, produced and verified), then random
    messages (eight keys), give the published or `cryptography`'s outputs and
    verdicts."""
    rng = random.Random(f"{tag_bytes}-{length_bits}")
    keys = [rng.randbytes(16) for _ in range(8)]
    messages = cavp_messages(8 * tag_bytes, 15)
    assert len(messages) == 2 * 25 * 15
    messages += [random_message(rng, rng.choice(keys), tag_bytes, max_length=longest)
                 for _ in range(count)]
    spec = []
    for message in messages:
        output, tag_ok = message.answer(tag_bytes)
        spec.append({"key": message.key.hex(), "aad_bytes": len(message.aad),
                     "payload_bytes": len(message.payload), "decrypt": int(message.decrypt),
                     "verify": int(message.verify), "data": message.data(tag_bytes).hex(),
                     "output": output.hex(), "tag_ok": int(tag_ok)})
    path = tmp_path / "messages.json"
    path.write_text(json.dumps(spec))
    dut = KeyedEngine(tag_bytes=tag_bytes, length_bits=length_bits)
    assert run_bench(dut, toplevel="serial_gcm", module="serial_gcm", work_dir=tmp_path,
                     environment={"REFMETER_MESSAGES_FILE": str(path),
                                  "REFMETER_KEY_SLOTS": str(KEY_SLOTS),
                                  "REFMETER_LENGTH_BITS": str(length_bits)}) == (1, 0)
