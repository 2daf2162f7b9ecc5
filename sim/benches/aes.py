"""cocotb bench: the Verilog of an :class:`~refmeter.gateware.aes.Aes128` against `cryptography`.

Random requests go back to back (directions mixed when the engine decrypts), each
response is taken at once and checked in order against ``cryptography``'s AES
(OpenSSL). The environment, set by ``tests/test_aes.py``, gives the length and the
seed: ``REFMETER_BLOCKS``, ``REFMETER_DECRYPT`` (1 when the engine was built with
``decrypt=True``) and ``REFMETER_SEED``.
"""

import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def reference(key: bytes, block: bytes, decrypt: bool) -> bytes:
    """AES-128 of one block by the `cryptography` package (ECB: the bare cipher)."""
    cipher = Cipher(algorithms.AES(key), modes.ECB())
    operation = cipher.decryptor() if decrypt else cipher.encryptor()
    return operation.update(block) + operation.finalize()


@cocotb.test()
async def random_blocks(dut):
    """Every response equals `cryptography`'s, in request order."""
    count = int(os.environ["REFMETER_BLOCKS"])
    decrypt = os.environ["REFMETER_DECRYPT"] == "1"
    rng = random.Random(os.environ["REFMETER_SEED"])
    requests = [(rng.randbytes(16), rng.randbytes(16), decrypt and rng.random() < 0.5)
                for _ in range(count)]

    Clock(dut.clk, 10, unit="ns", impl="gpi").start()
    dut.rst.value = 1
    dut.request__valid.value = 0
    dut.response__ready.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0

    offered = taken = 0
    cycles = 0
    while taken < count:
        # Drive between edges, then read the settled handshakes the next edge will see.
        await FallingEdge(dut.clk)
        if offered < count:
            key, block, backwards = requests[offered]
            payload = (int.from_bytes(key, "big") << 128) | int.from_bytes(block, "big")
            if decrypt:
                payload |= backwards << 256
            dut.request__payload.value = payload
            dut.request__valid.value = 1
        else:
            dut.request__valid.value = 0
        await ReadOnly()
        if offered < count and dut.request__ready.value:
            offered += 1
        if dut.response__valid.value:
            key, block, backwards = requests[taken]
            result = int(dut.response__payload.value).to_bytes(16, "big")
            expected = reference(key, block, backwards)
            assert result == expected, (
                f"block {taken} ({'decrypt' if backwards else 'encrypt'}, key {key.hex()}, "
                f"block {block.hex()}): {result.hex()}, expected {expected.hex()}")
            taken += 1
        cycles += 1
        assert cycles < 200 * count + 1000, f"only {taken} of {count} blocks came out"
