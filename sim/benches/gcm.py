"""cocotb bench: the Verilog of an :class:`~refmeter.gateware.aes.AesGcm` against `cryptography`.

Random well-formed messages (AAD and payload from empty to several blocks, partial
final blocks, both directions, tags produced and verified, a third of the
verified ones wrong) go through the engine with elements back to back; every
output block, tag and verdict is checked against ``cryptography``'s AES-GCM
(OpenSSL). The environment, set by ``tests/test_gcm.py``, gives ``REFMETER_MESSAGES``,
``REFMETER_SEED`` and ``REFMETER_TAG_BYTES`` (the engine's ``tag_bytes``).
"""

import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, First, ReadOnly, RisingEdge, with_timeout
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from refmeter.gateware.aes import ELEMENT_LAYOUT, MESSAGE_LAYOUT, RESULT_LAYOUT


def _pack(layout, **fields) -> int:
    """A payload of ``layout`` as an integer, for the Verilog port."""
    value = 0
    for name, field in layout:
        value |= (fields[name] & ((1 << field.width) - 1)) << field.offset
    return value


def _unpack(layout, value: int) -> dict:
    return {name: (value >> field.offset) & ((1 << field.width) - 1) for name, field in layout}


class Message:
    """A random message and the answer `cryptography` gives for it."""

    def __init__(self, rng: random.Random, keys: list, tag_bytes: int):
        def length():
            return rng.choice([0, 16, rng.randrange(1, 71)])
        self.key, self.iv = rng.choice(keys), rng.randbytes(12)
        self.aad, payload = rng.randbytes(length()), rng.randbytes(length())
        self.decrypt, self.verify = rng.random() < 0.5, rng.random() < 0.5
        if self.decrypt:
            counter = modes.CTR(self.iv + b"\x00\x00\x00\x02")
            decryptor = Cipher(algorithms.AES(self.key), counter).decryptor()
            output = decryptor.update(payload) + decryptor.finalize()
            tag = AESGCM(self.key).encrypt(self.iv, output, self.aad)[-16:]
        else:
            sealed = AESGCM(self.key).encrypt(self.iv, payload, self.aad)
            output, tag = sealed[:-16], sealed[-16:]
        self.payload = payload
        self.outputs = [int.from_bytes(output[n:n + 16].ljust(16, b"\0"), "big")
                        for n in range(0, len(output), 16)]
        tag = tag[:tag_bytes]
        chunks = [self.aad[n:n + 16] for n in range(0, len(self.aad), 16)]
        chunks += [payload[n:n + 16] for n in range(0, len(payload), 16)]
        if self.verify:
            expected = bytearray(tag)
            if rng.random() < 1 / 3:
                expected[rng.randrange(tag_bytes)] ^= 1 << rng.randrange(8)
            chunks.append(bytes(expected))
            self.tag, self.tag_ok = 0, bytes(expected) == tag
        else:
            self.tag = int.from_bytes(tag.ljust(16, b"\0"), "big")
            self.tag_ok = False
        # Bytes past a final block's end are random: the engine must ignore them.
        self.elements = [
            _pack(ELEMENT_LAYOUT, data=int.from_bytes(chunk + rng.randbytes(16 - len(chunk)),
                                                      "big"), last=int(n == len(chunks) - 1))
            for n, chunk in enumerate(chunks)]
        self.header = _pack(MESSAGE_LAYOUT, iv=int.from_bytes(self.iv, "big"),
                            aad_bytes=len(self.aad), payload_bytes=len(payload),
                            decrypt=int(self.decrypt), verify=int(self.verify))


@cocotb.test()
async def random_messages(dut):
    """Every output block, tag and verdict is `cryptography`'s, message after message."""
    count = int(os.environ["REFMETER_MESSAGES"])
    tag_bytes = int(os.environ["REFMETER_TAG_BYTES"])
    rng = random.Random(os.environ["REFMETER_SEED"])
    keys = [rng.randbytes(16) for _ in range(8)]
    messages = [Message(rng, keys, tag_bytes) for _ in range(count)]
    elements = [(index, element) for index, message in enumerate(messages)
                for element in message.elements]

    Clock(dut.clk, 10, unit="ns", impl="gpi").start()
    dut.rst.value = 1
    for port in (dut.message__valid, dut.data__valid):
        port.value = 0
    dut.output__ready.value = 1
    dut.result__ready.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0

    headed = offered = answered = given = 0     # headers, elements, results, outputs taken

    def drive():
        if headed < count:
            dut.key.value = int.from_bytes(messages[headed].key, "big")
            dut.message__payload.value = messages[headed].header
        dut.message__valid.value = int(headed < count)
        if offered < len(elements):
            dut.data__payload.value = elements[offered][1]
        dut.data__valid.value = int(offered < len(elements))

    drive()
    handshakes = (dut.message__ready, dut.data__ready, dut.output__valid, dut.result__valid)
    # Python wakes only when a handshake is up (outputs are always taken), not every
    # cycle: most of a message's cycles are the engine working.
    await ReadOnly()
    while answered < count:
        if not any(signal.value for signal in handshakes):
            await with_timeout(First(*(RisingEdge(signal) for signal in handshakes)),
                               20_000, "ns")
            await ReadOnly()
            continue
        # The transfers of this cycle, taken at the next rising edge.
        if headed < count and dut.message__ready.value:
            headed += 1
        if offered < len(elements) and dut.data__ready.value:
            offered += 1
        message = messages[answered]
        if dut.output__valid.value:
            block = int(dut.output__payload.value)
            assert given < len(message.outputs) and block == message.outputs[given], (
                f"message {answered}, output block {given}: {block:032x}")
            given += 1
        if dut.result__valid.value:
            result = _unpack(RESULT_LAYOUT, int(dut.result__payload.value))
            assert (result["tag"], result["tag_ok"], result["malformed"], given) == \
                (message.tag, int(message.tag_ok), 0, len(message.outputs)), (
                f"message {answered} (decrypt={message.decrypt}, verify={message.verify}, "
                f"{len(message.aad)} AAD bytes, {len(message.payload)} payload bytes): {result}")
            answered += 1
            given = 0
        await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        drive()
        await ReadOnly()
