# amaranth: UnusedElaboratable=no
"""The byte-serial AES-GCM engine against published vectors and the `cryptography` package.

Expected values come from the GCM specification's test cases, NIST's CAVP files, the
Green Book example (all imported from tests/test_gcm.py) or `cryptography`'s AES-GCM,
never from the code under test. The engine runs behind :class:`KeyedEngine`, which
gives it a key RAM like its owner's; the ``extended`` test sends thousands of random
messages through the Verilog under cocotb and Verilator (``sim/benches/serial_gcm.py``).
"""

import random
from dataclasses import dataclass, field

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateware_helpers import run_simulation
from refmeter.gateware.aes import SerialAesGcm, serial_gcm_cycles
from refmeter.sim.benches import run_bench
from test_gcm import (GCM_SPEC_CASES, GREEN_BOOK_APDU, GREEN_BOOK_AUTH_KEY, GREEN_BOOK_CIPHERTEXT,
                      GREEN_BOOK_IV, GREEN_BOOK_KEY, GREEN_BOOK_TAG, _cavp_vectors, gcm_reference)

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
                 ready: float = 1.0, seed: int = 1, keys_between=None) -> list[Answer]:
    """Send ``messages`` (each key in a slot of its own, in order of first use) and
    collect the answers. ``gaps``: chance that the sender pauses before a byte (for
    1-3 cycles); ``ready``: chance that ``output`` and ``result`` are ready in a
    cycle. Headers are offered as soon as the previous one is taken, data bytes
    back to back regardless of headers, as a real sender would. One testbench
    process does it all, a Python wake-up a cycle. Checks every cycle that
    ``output.payload`` and ``result.payload`` are zero while not valid."""
    engine = dut.engine
    tag_bytes = engine.tag_bytes
    rng = random.Random(seed)
    slots = {}
    for message in messages:
        slots.setdefault(message.key, len(slots))
    assert len(slots) <= KEY_SLOTS
    stream_bytes = b"".join(message.data(tag_bytes) for message in messages)
    answers = [Answer() for _ in messages]

    async def bench(ctx):
        for key, slot in slots.items():
            for index, byte in enumerate(key):
                ctx.set(dut.keys.data[16 * slot + index], byte)
        cycle = headed = offered = answered = 0
        pause = 0
        output = bytearray()
        while answered < len(messages):
            if headed < len(messages):
                message = messages[headed]
                ctx.set(dut.key_slot, slots[message.key])
                ctx.set(dut.message.payload, {
                    "aad_bytes": len(message.aad), "payload_bytes": len(message.payload),
                    "decrypt": int(message.decrypt), "verify": int(message.verify)})
            ctx.set(dut.message.valid, headed < len(messages))
            ctx.set(dut.data.valid, offered < len(stream_bytes) and pause == 0)
            if offered < len(stream_bytes):
                ctx.set(dut.data.payload, stream_bytes[offered])
            ctx.set(dut.output.ready, rng.random() < ready)
            ctx.set(dut.result.ready, rng.random() < ready)
            _, _, *sampled = await ctx.tick().sample(
                dut.message.ready, dut.message.valid, dut.data.ready, dut.data.valid,
                dut.output.valid, dut.output.ready, dut.output.payload,
                dut.result.valid, dut.result.ready, dut.result.payload.tag_ok)
            (header_ready, header_valid, data_ready, data_valid, output_valid, output_ready,
             output_byte, result_valid, result_ready, tag_ok) = sampled
            cycle += 1
            assert output_valid or output_byte == 0
            assert result_valid or tag_ok == 0
            if header_valid and header_ready:
                answers[headed].started = cycle
                headed += 1
            if pause:
                pause -= 1
            if data_valid and data_ready:
                offered += 1
                if rng.random() < gaps:
                    pause = rng.randrange(1, 4)
            if output_valid and output_ready:
                output.append(output_byte)
            if result_valid and result_ready:
                answers[answered].output, answers[answered].tag_ok = bytes(output), bool(tag_ok)
                answers[answered].finished = cycle
                output.clear()
                answered += 1
                if keys_between is not None and answered < len(messages):
                    keys_between(ctx, dut, answered)
        assert offered == len(stream_bytes)

    run_simulation(dut, bench)
    for message, answer in zip(messages, answers):
        assert (answer.output, answer.tag_ok) == message.answer(tag_bytes), message
    return answers


def test_smoke():
    rng = random.Random(1)
    key = rng.randbytes(16)
    messages = [Message(key, rng.randbytes(12), rng.randbytes(13), rng.randbytes(16))]
    answers = run_messages(KeyedEngine(tag_bytes=12), messages)
    print(answers)
