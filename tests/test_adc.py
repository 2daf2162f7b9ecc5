# amaranth: UnusedElaboratable=no
"""The ADS131M04 receiver against the ADC model, the model against the datasheet's frame
format, and the SPI waveform against an independent mode-1 checker.

Expectations are written out by hand from the datasheet (TI ADS131M04, see
``docs/metrology.md``), never taken from the code under test: command words are
spelled out bit by bit, frames are assembled byte by byte, and CRCs come from
:func:`binascii.crc_hqx` (CRC-16 CCITT, seed FFFFh) over the 24-bit words *including*
their zero padding.
"""

import binascii
import random
import subprocess
import sys

import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data

from gateware_helpers import run_simulation, ticks
from refmeter.gateware.adc.ads131m04 import SAMPLE_LAYOUT, ADS131M04Receiver, sample_layout
from refmeter.gateware.registers import Access
from refmeter.sim.ads131m04 import ADS131M04Model

# --- The datasheet, by hand -----------------------------------------------------------

#: WREG (011a aaaa annn nnnn) of two registers (n = 1) from MODE (a = 000010).
WREG_MODE_AND_CLOCK = 0b011_000010_0000001    # 0x6101
#: Its acknowledgement (010a aaaa ammm mmmm).
WREG_MODE_AND_CLOCK_ACK = 0b010_000010_0000001  # 0x4101
#: RREG (101a aaaa annn nnnn) of one register (n = 0) at CLOCK (a = 000011).
RREG_CLOCK = 0b101_000011_0000000             # 0xA180
#: MODE after reset (0510h) with its RESET flag (bit 10) cleared.
MODE_WITHOUT_RESET_FLAG = 0x0110
#: CLOCK: CH3..0_EN = 1111 (bits 11:8), TBM 0, OSR code in bits 4:2, PWR = 10 (HR).
CLOCK_FOR_OSR = {512: 0x0F00 | 0b010 << 2 | 0b10,    # 0x0F0A: 8 kSPS at 8.192 MHz
                 1024: 0x0F00 | 0b011 << 2 | 0b10}   # 0x0F0E: 4 kSPS, the reset value

FULL_SCALE = 2**23 - 1
EDGE_SETS = [
    (FULL_SCALE, -FULL_SCALE, -2**23, 0),
    (0, -2**23, FULL_SCALE, -FULL_SCALE),
    (-1, 1, -2**23 + 1, 2**23 - 2),
    (0x555555, -0x555556, 0x2AAAAA, -0x2AAAAB),
]


def word16(value: int) -> bytes:
    """A 16-bit command, response or CRC in a 24-bit word: MSB aligned, zero padded."""
    return (value << 8).to_bytes(3, "big")


def code24(value: int) -> bytes:
    """A 24-bit two's complement conversion code."""
    return (value & 0xFFFFFF).to_bytes(3, "big")


def output_frame(first_word: int, codes) -> bytes:
    """The 18 bytes on DOUT: response word, four channels, output CRC word, where the
    CRC covers the first 15 bytes."""
    body = word16(first_word) + b"".join(code24(code) for code in codes)
    return body + word16(binascii.crc_hqx(body, 0xFFFF))


def words_to_bytes(words) -> bytes:
    return b"".join(word.to_bytes(3, "big") for word in words)


# --- Bench ----------------------------------------------------------------------------------

class SpiChecker:
    """Background testbench: an SPI mode 1 (CPOL 0, CPHA 1) checker on the pins.

    Raises on the first violation of: SCLK low whenever CS is high and at both CS
    edges; COPI changes only with an SCLK rising edge (or while CS is high); DOUT
    changes only while SCLK is high (never at the falling edge that samples it); every
    SCLK phase, CS-to-first-edge, last-edge-to-CS and CS-high time at least
    ``half_period`` cycles; 144 SCLK cycles per frame. Decodes every frame into six
    24-bit words each way, sampled on the falling edges.
    """

    def __init__(self, receiver, adc, *, half_period: int):
        self.receiver = receiver
        self.adc = adc
        self.half_period = half_period
        self.frames: list[tuple[list[int], list[int]]] = []   # (DIN words, DOUT words)
        self.cs_low_cycles: list[int] = []

    async def run(self, ctx):
        pins = (self.receiver.cs_n, self.receiver.sclk, self.receiver.copi, self.adc.cipo)
        last = tuple(ctx.get(pin) for pin in pins)
        cycle, last_edge, cs_fell = 0, None, 0
        din, dout = [], []
        while True:
            await ctx.tick()
            cycle += 1
            cs_n, sclk, copi, cipo = now = tuple(ctx.get(pin) for pin in pins)
            last_cs_n, last_sclk, last_copi, last_cipo = last
            where = f"cycle {cycle}, frame {len(self.frames)}, bit {len(din)}"
            if cs_n:
                assert not sclk, f"SCLK high while CS is high ({where})"
            if cs_n != last_cs_n or sclk != last_sclk:
                if last_edge is not None:
                    assert cycle - last_edge >= self.half_period, \
                        f"{cycle - last_edge} cycles between edges, fewer than " \
                        f"{self.half_period} ({where})"
                last_edge = cycle
            if cs_n != last_cs_n:
                assert not sclk and not last_sclk, f"CS moved with SCLK high ({where})"
                if not cs_n:
                    cs_fell = cycle
                else:
                    assert len(din) == 144, f"frame of {len(din)} SCLK cycles, not 144"
                    self.cs_low_cycles.append(cycle - cs_fell)
                    self.frames.append((self._words(din), self._words(dout)))
                    din, dout = [], []
            elif not cs_n:
                if copi != last_copi:
                    assert sclk and not last_sclk, f"COPI changed without a rising edge ({where})"
                if cipo != last_cipo:
                    assert sclk and last_sclk, f"DOUT changed outside SCLK's high phase ({where})"
                if last_sclk and not sclk:           # falling edge: both sides sample
                    din.append(last_copi)
                    dout.append(last_cipo)
            last = now

    @staticmethod
    def _words(bits):
        return [int("".join(map(str, bits[start:start + 24])), 2)
                for start in range(0, len(bits), 24)]


class AdcBench:
    """The receiver wired to ``devices`` ADC models, with the receiver's sample stream
    drained into :attr:`samples` (while :attr:`take` is true) and optionally an SPI
    checker (of device 0's DOUT).

    The models are wired as the ADCs would be: SCLK, CS and DIN shared, DOUT of model
    *k* to ``cipo[k]``, DRDY from model 0 only."""

    #: Cycles between conversions, per unit of SCLK divisor: a frame takes 289 half
    #: periods, so about three quarters of the period is spent reading.
    PERIOD_PER_DIVISOR = 400

    def __init__(self, *, sclk_divisor: int = 2, osr: int = 512, check_spi: bool = False,
                 devices: int = 1):
        self.receiver = ADS131M04Receiver(sclk_divisor=sclk_divisor, osr=osr, devices=devices)
        self.adcs = [ADS131M04Model(clk_freq=12_000_000) for _ in range(devices)]
        #: Device 0, the one whose DRDY the receiver sees.
        self.adc = self.adcs[0]
        self.top = Module()
        self.top.submodules.receiver = receiver = self.receiver
        #: Driven high by a test, pulls the receiver's DRDY low: noise on the line.
        self.drdy_glitch = Signal()
        for device, adc in enumerate(self.adcs):
            self.top.submodules[f"adc{device}"] = adc
            self.top.d.comb += [
                adc.sclk.eq(receiver.sclk), adc.cs_n.eq(receiver.cs_n),
                adc.copi.eq(receiver.copi), receiver.cipo[device].eq(adc.cipo),
            ]
        self.top.d.comb += receiver.drdy_n.eq(self.adc.drdy_n & ~self.drdy_glitch)
        self.period = self.PERIOD_PER_DIVISOR * sclk_divisor
        self.samples: list[tuple[int, ...]] = []
        self.take = True
        self.spi = SpiChecker(receiver, self.adc, half_period=sclk_divisor) if check_spi else None

    def run(self, *testbenches):
        background = [self._drain] + ([self.spi.run] if self.spi else [])
        run_simulation(self.top, *testbenches, background=background)

    async def _drain(self, ctx):
        stream = self.receiver.samples
        while True:
            ctx.set(stream.ready, self.take)
            if ctx.get(stream.valid) and self.take:
                self.samples.append(tuple(ctx.get(stream.payload)))
            await ctx.tick()

    async def offer(self, ctx, codes) -> None:
        """Hand the models one conversion result (they are always ready): four codes
        per device, device 0's first, all in the same cycle as a shared CLKIN would."""
        for device, adc in enumerate(self.adcs):
            ctx.set(adc.codes.payload, list(codes[4 * device:4 * device + 4]))
            ctx.set(adc.codes.valid, 1)
            assert ctx.get(adc.codes.ready)
        await ctx.tick()
        for adc in self.adcs:
            ctx.set(adc.codes.valid, 0)

    async def convert(self, ctx, sets) -> None:
        """One conversion per period, as the ADC's clock would pace them."""
        for codes in sets:
            await self.offer(ctx, codes)
            await ticks(ctx, self.period - 1)

    async def bring_up(self, ctx, *, max_conversions: int = 8) -> int:
        """Convert until the receiver reports ``configured``; return the conversions
        it took. Their data are configuration frames' and never reach the stream."""
        for used in range(1, max_conversions + 1):
            await self.convert(ctx, [(used, -used, 0, 0) * len(self.adcs)])
            if ctx.get(self.receiver.configured):
                assert self.samples == [], "configuration frames must not emit samples"
                return used
        raise AssertionError(f"not configured after {max_conversions} conversions")

    async def wait_for_frame(self, ctx) -> None:
        """Wait until CS goes low: a frame is being read."""
        for _ in range(self.period):
            if not ctx.get(self.receiver.cs_n):
                return
            await ctx.tick()
        raise AssertionError("no frame started")

    def counters(self, ctx) -> dict[str, int]:
        return {name: ctx.get(getattr(self.receiver, name))
                for name in ("crc_errors", "missed_frames", "overruns")}


def random_sets(count: int, seed: int, *, devices: int = 1):
    rng = random.Random(seed)
    return [tuple(rng.randrange(-2**23, 2**23) for _ in range(4 * devices))
            for _ in range(count)]


async def pulse(ctx, *signals) -> None:
    """One cycle high: fault-injection inputs of the models, all in the same cycle."""
    for signal in signals:
        ctx.set(signal, 1)
    await ctx.tick()
    for signal in signals:
        ctx.set(signal, 0)


NO_ERRORS = {"crc_errors": 0, "missed_frames": 0, "overruns": 0}


# --- Configuration ----------------------------------------------------------------------------

@pytest.mark.parametrize("osr", [512, 1024])
def test_configuration_writes_mode_and_clock_once_and_checks_both_answers(osr):
    """Three frames bring the ADC up: WREG MODE+CLOCK, RREG CLOCK (answered with the
    WREG acknowledgement), NULL (answered with CLOCK as written); then ``configured``."""
    bench = AdcBench(osr=osr, check_spi=True)
    clock = CLOCK_FOR_OSR[osr]

    async def bench_process(ctx):
        assert await bench.bring_up(ctx) == 3
        assert ctx.get(bench.adc.register_writes) == 1
        assert ctx.get(bench.adc.clock) == clock
        assert ctx.get(bench.adc.mode) == MODE_WITHOUT_RESET_FLAG
        await bench.convert(ctx, EDGE_SETS[:2])
        assert ctx.get(bench.adc.register_writes) == 1, "CLOCK is written once"
        assert bench.counters(ctx) == NO_ERRORS

    bench.run(bench_process)
    frames = bench.spi.frames
    assert frames[0][0] == [WREG_MODE_AND_CLOCK << 8, MODE_WITHOUT_RESET_FLAG << 8,
                            clock << 8, 0, 0, 0]
    assert frames[1][0] == [RREG_CLOCK << 8, 0, 0, 0, 0, 0]
    assert frames[1][1][0] == WREG_MODE_AND_CLOCK_ACK << 8
    assert frames[2][0] == [0] * 6
    assert frames[2][1][0] == clock << 8
    assert all(din == [0] * 6 for din, _ in frames[3:]), "then only NULL commands"
    assert bench.samples == EDGE_SETS[:2]


def test_configuration_starts_again_when_its_answer_is_corrupted():
    """A bad CRC on the frame carrying the WREG acknowledgement sends the receiver
    back to WREG; the second attempt succeeds."""
    bench = AdcBench()

    async def bench_process(ctx):
        await bench.convert(ctx, [(1, 1, 1, 1)])                 # frame 1: WREG
        await pulse(ctx, bench.adc.corrupt_crc)
        await bench.convert(ctx, [(2, 2, 2, 2)])                 # frame 2: bad ACK frame
        assert not ctx.get(bench.receiver.configured)
        assert await bench.bring_up(ctx) == 3
        assert ctx.get(bench.adc.register_writes) == 2
        assert ctx.get(bench.adc.clock) == CLOCK_FOR_OSR[512]
        assert bench.counters(ctx) == NO_ERRORS | {"crc_errors": 1}

    bench.run(bench_process)


# --- Samples ---------------------------------------------------------------------------------

def test_codes_come_out_bit_exact_and_in_order():
    """Edge codes (+-(2^23-1), -2^23, 0, alternating bits) and random codes offered to the
    ADC come out of ``samples`` unchanged, in order, with no errors counted."""
    bench = AdcBench()
    sets = EDGE_SETS + random_sets(28, seed=131)

    async def bench_process(ctx):
        await bench.bring_up(ctx)
        await bench.convert(ctx, sets)
        assert bench.counters(ctx) == NO_ERRORS
        assert ctx.get(bench.adc.lost_sets) == 0

    bench.run(bench_process)
    assert bench.samples == sets


def test_corrupted_crc_frame_is_counted_and_never_emitted():
    """A frame whose CRC fails is counted in ``crc_errors`` and its samples never appear;
    the next frame comes through."""
    bench = AdcBench()
    before, bad, after = EDGE_SETS[0], EDGE_SETS[1], random_sets(3, seed=7)

    async def bench_process(ctx):
        await bench.bring_up(ctx)
        await bench.convert(ctx, [before])
        await pulse(ctx, bench.adc.corrupt_crc)
        await bench.convert(ctx, [bad])
        assert ctx.get(bench.receiver.crc_errors) == 1
        await bench.convert(ctx, after)
        assert bench.counters(ctx) == NO_ERRORS | {"crc_errors": 1}
        assert ctx.get(bench.receiver.configured), "a bad frame does not reconfigure"

    bench.run(bench_process)
    assert bench.samples == [before] + after


def test_consumer_not_ready_counts_an_overrun_and_keeps_the_first_set():
    """A set that arrives while the previous one is still on the stream is dropped and
    counted; the stream keeps offering the first."""
    bench = AdcBench()

    async def bench_process(ctx):
        await bench.bring_up(ctx)
        bench.take = False
        await bench.convert(ctx, EDGE_SETS[:2])
        assert bench.counters(ctx) == NO_ERRORS | {"overruns": 1}
        assert ctx.get(bench.receiver.samples.valid)
        assert tuple(ctx.get(bench.receiver.samples.payload)) == EDGE_SETS[0]
        bench.take = True
        await ticks(ctx, 3)
        assert not ctx.get(bench.receiver.samples.valid)
        await bench.convert(ctx, EDGE_SETS[2:3])

    bench.run(bench_process)
    assert bench.samples == [EDGE_SETS[0], EDGE_SETS[2]]


# --- Missed conversions ----------------------------------------------------------------------

def test_conversion_during_a_read_is_counted_and_read_next():
    """A conversion that completes while a frame is being read keeps DRDY low (the ADC
    holds it back): counted once in ``missed_frames``, then read, so nothing is lost."""
    bench = AdcBench()
    sets = random_sets(4, seed=3)

    async def bench_process(ctx):
        await bench.bring_up(ctx)
        await bench.offer(ctx, sets[0])
        await bench.wait_for_frame(ctx)
        await ticks(ctx, 100)
        await bench.offer(ctx, sets[1])
        await ticks(ctx, bench.period * 2)
        assert bench.counters(ctx) == NO_ERRORS | {"missed_frames": 1}
        await bench.convert(ctx, sets[2:])
        assert bench.counters(ctx) == NO_ERRORS | {"missed_frames": 1}

    bench.run(bench_process)
    assert bench.samples == sets


def test_conversions_faster_than_reads_lose_sets_and_count_them():
    """Two conversions completing during one read: the older is replaced in the ADC,
    ``missed_frames`` counts the late frame, and the newest set is read next."""
    bench = AdcBench()
    sets = random_sets(5, seed=5)
    lost = []

    async def bench_process(ctx):
        await bench.bring_up(ctx)
        await bench.offer(ctx, sets[0])
        await bench.wait_for_frame(ctx)
        await ticks(ctx, 50)
        await bench.offer(ctx, sets[1])
        await ticks(ctx, 100)
        await bench.offer(ctx, sets[2])                 # replaces sets[1], unread
        await ticks(ctx, bench.period * 2)
        await bench.convert(ctx, sets[3:])
        assert bench.counters(ctx) == NO_ERRORS | {"missed_frames": 1}
        lost.append(ctx.get(bench.adc.lost_sets))

    bench.run(bench_process)
    assert lost == [1]
    assert bench.samples == [sets[0], sets[2], sets[3], sets[4]]


def test_spurious_drdy_reads_stale_data_which_is_counted_and_dropped():
    """A DRDY edge with no conversion behind it (noise on the line) reads a frame whose
    STATUS has DRDY3..0 clear: counted in ``missed_frames``, its repeated data dropped."""
    bench = AdcBench()
    sets = random_sets(3, seed=13)

    async def bench_process(ctx):
        await bench.bring_up(ctx)
        await bench.convert(ctx, sets[:1])
        ctx.set(bench.drdy_glitch, 1)
        await ticks(ctx, 10)
        ctx.set(bench.drdy_glitch, 0)
        await ticks(ctx, bench.period)
        assert bench.counters(ctx) == NO_ERRORS | {"missed_frames": 1}
        await bench.convert(ctx, sets[1:])
        assert bench.counters(ctx) == NO_ERRORS | {"missed_frames": 1}

    bench.run(bench_process)
    assert bench.samples == sets


def test_adc_reset_is_counted_and_the_adc_configured_again():
    """After a device reset the STATUS word's RESET flag is set: that frame is counted
    and dropped, ``configured`` falls, and configuration runs again."""
    bench = AdcBench()
    sets = random_sets(8, seed=11)
    configured_trace = []

    async def bench_process(ctx):
        await bench.bring_up(ctx)
        await bench.convert(ctx, sets[:2])
        await pulse(ctx, bench.adc.device_reset)
        assert ctx.get(bench.adc.clock) == 0x0F0E, "the model is back at its reset value"
        for codes in sets[2:]:
            await bench.convert(ctx, [codes])
            configured_trace.append(ctx.get(bench.receiver.configured))
        assert ctx.get(bench.adc.register_writes) == 2
        assert ctx.get(bench.adc.clock) == CLOCK_FOR_OSR[512]
        assert bench.counters(ctx) == NO_ERRORS | {"missed_frames": 1}

    bench.run(bench_process)
    # sets[2]: STATUS shows RESET; sets[3..5]: WREG, RREG, NULL frames; then data again.
    assert configured_trace == [0, 0, 0, 1, 1, 1]
    assert bench.samples == sets[:2] + sets[6:]


# --- Two ADCs (three-phase) --------------------------------------------------------------------

def test_two_adcs_are_configured_together():
    """Both ADCs receive the same WREG, RREG and NULL frames and are configured by the
    same three frames, each written once."""
    bench = AdcBench(devices=2)

    async def bench_process(ctx):
        assert await bench.bring_up(ctx) == 3
        for adc in bench.adcs:
            assert ctx.get(adc.register_writes) == 1
            assert ctx.get(adc.mode) == MODE_WITHOUT_RESET_FLAG
            assert ctx.get(adc.clock) == CLOCK_FOR_OSR[512]

    bench.run(bench_process)


def test_two_adcs_configuration_waits_for_device_1_to_acknowledge():
    """Device 1 reset after the WREG frame answers the RREG frame with STATUS, not the
    acknowledgement: configuration starts again, though device 0 answered correctly,
    and completes with both ADCs' CLOCK written and read back."""
    bench = AdcBench(devices=2)

    async def bench_process(ctx):
        await bench.convert(ctx, [(1,) * 8])                     # frame 1: WREG
        await pulse(ctx, bench.adcs[1].device_reset)
        assert await bench.bring_up(ctx) == 4                    # bad ACK, WREG, RREG, NULL
        for adc in bench.adcs:
            assert ctx.get(adc.register_writes) == 2
            assert ctx.get(adc.clock) == CLOCK_FOR_OSR[512]

    bench.run(bench_process)


def test_two_adcs_codes_come_out_bit_exact_device_0_first():
    """Eight codes a set, device 0's four channels then device 1's, unchanged and in
    order."""
    bench = AdcBench(devices=2)
    sets = [EDGE_SETS[0] + EDGE_SETS[1]] + random_sets(12, seed=262, devices=2)

    async def bench_process(ctx):
        await bench.bring_up(ctx)
        await bench.convert(ctx, sets)
        assert bench.counters(ctx) == NO_ERRORS

    bench.run(bench_process)
    assert bench.samples == sets


def test_two_adcs_crc_error_on_one_device_drops_the_set_and_counts_once():
    """A bad CRC on device 1 alone drops the set and counts one error; bad CRCs on both
    devices in one frame count one error too."""
    bench = AdcBench(devices=2)
    sets = random_sets(6, seed=17, devices=2)

    async def bench_process(ctx):
        await bench.bring_up(ctx)
        await bench.convert(ctx, sets[:1])
        await pulse(ctx, bench.adcs[1].corrupt_crc)
        await bench.convert(ctx, sets[1:3])
        assert bench.counters(ctx) == NO_ERRORS | {"crc_errors": 1}
        await pulse(ctx, *(adc.corrupt_crc for adc in bench.adcs))
        await bench.convert(ctx, sets[3:])
        assert bench.counters(ctx) == NO_ERRORS | {"crc_errors": 2}

    bench.run(bench_process)
    assert bench.samples == [sets[0], sets[2], sets[4], sets[5]]


def test_two_adcs_reset_of_device_1_reconfigures_both():
    """Device 1's STATUS shows RESET while device 0's does not: the frame is counted and
    dropped, ``configured`` falls, and both ADCs are configured again."""
    bench = AdcBench(devices=2)
    sets = random_sets(8, seed=19, devices=2)
    configured_trace = []

    async def bench_process(ctx):
        await bench.bring_up(ctx)
        await bench.convert(ctx, sets[:2])
        await pulse(ctx, bench.adcs[1].device_reset)
        for codes in sets[2:]:
            await bench.convert(ctx, [codes])
            configured_trace.append(ctx.get(bench.receiver.configured))
        assert [ctx.get(adc.register_writes) for adc in bench.adcs] == [2, 2]
        assert ctx.get(bench.adcs[1].clock) == CLOCK_FOR_OSR[512]
        assert bench.counters(ctx) == NO_ERRORS | {"missed_frames": 1}

    bench.run(bench_process)
    assert configured_trace == [0, 0, 0, 1, 1, 1]
    assert bench.samples == sets[:2] + sets[6:]


# --- SPI waveform --------------------------------------------------------------------------

@pytest.mark.parametrize("sclk_divisor", [2, 3])
def test_spi_waveform_is_mode_1_with_cs_high_between_frames(sclk_divisor):
    """An independent checker sees mode 1 on the pins (COPI and DOUT change after rising
    edges, both sampled on falling edges), SCLK idle low, CS high between frames, every
    phase at least the divisor long, and 144 clocks a frame; every DOUT frame carries
    the offered codes and a CRC that ``binascii.crc_hqx`` agrees with."""
    bench = AdcBench(sclk_divisor=sclk_divisor, check_spi=True)
    sets = EDGE_SETS[:2] + random_sets(2, seed=sclk_divisor)

    async def bench_process(ctx):
        await bench.bring_up(ctx)
        await bench.convert(ctx, sets)

    bench.run(bench_process)
    assert len(bench.spi.frames) == 3 + len(sets)
    # One half period before the first edge, 288 half periods of SCLK, the last ending
    # with CS rising.
    assert bench.spi.cs_low_cycles == [289 * sclk_divisor] * len(bench.spi.frames)
    assert bench.receiver.frame_cycles == 289 * sclk_divisor
    for din, dout in bench.spi.frames:
        received = words_to_bytes(dout)
        assert received[15:] == word16(binascii.crc_hqx(received[:15], 0xFFFF))
    for (_, dout), codes in zip(bench.spi.frames[3:], sets):
        status = dout[0] >> 8
        # STATUS: RESET flag clear, WLENGTH = 01 (24 bits), DRDY3..0 all set.
        assert status == 0x010F
        assert words_to_bytes(dout) == output_frame(status, codes)
    assert bench.samples == sets


# --- The model on its own, against the datasheet ------------------------------------------

async def spi_frame(ctx, adc, din_words, *, half_period: int = 2) -> list[int]:
    """Clock one six-word frame through ``adc`` as an SPI mode-1 host would; returns the
    six 24-bit words read from DOUT."""
    bits = [(word >> (23 - index)) & 1 for word in din_words for index in range(24)]
    bits += [0] * (144 - len(bits))
    ctx.set(adc.cs_n, 0)
    await ticks(ctx, half_period)
    dout = []
    for bit in bits:
        ctx.set(adc.sclk, 1)
        ctx.set(adc.copi, bit)
        await ticks(ctx, half_period)
        dout.append(ctx.get(adc.cipo))       # just before the falling edge
        ctx.set(adc.sclk, 0)
        await ticks(ctx, half_period)
    ctx.set(adc.cs_n, 1)
    ctx.set(adc.copi, 0)
    await ticks(ctx, half_period)
    return SpiChecker._words(dout)


async def offer_to(ctx, adc, codes) -> None:
    ctx.set(adc.codes.payload, list(codes))
    ctx.set(adc.codes.valid, 1)
    await ctx.tick()
    ctx.set(adc.codes.valid, 0)


def test_model_frames_and_crc_match_the_datasheet_format():
    """Frames read from the model equal frames assembled by hand: response word, four
    channels, CRC-16 CCITT (seed FFFFh, ``binascii.crc_hqx``) over the 15 bytes before it;
    responses as in the command table; ``corrupt_crc`` flips a CRC bit of one frame."""
    adc = ADS131M04Model()
    codes = EDGE_SETS[0]
    frames = {}

    async def host(ctx):
        # After reset: STATUS = 0500h (RESET flag, 24-bit words), no data yet.
        frames["reset"] = await spi_frame(ctx, adc, [0])
        await offer_to(ctx, adc, codes)
        await ticks(ctx, 2)
        assert ctx.get(adc.drdy_n) == 0
        frames["data"] = await spi_frame(ctx, adc, [0])
        assert ctx.get(adc.drdy_n) == 1, "DRDY rises once the channels are read"
        # WREG MODE (one register: 011 000010 0000000) = 0110h, then read it back.
        frames["before_wreg"] = await spi_frame(ctx, adc, [0b011_000010_0000000 << 8, 0x0110 << 8])
        frames["wreg_ack"] = await spi_frame(ctx, adc, [0b101_000010_0000000 << 8])
        frames["mode"] = await spi_frame(ctx, adc, [0])
        frames["status"] = await spi_frame(ctx, adc, [0x0011 << 8])      # RESET command
        frames["reset_ack"] = await spi_frame(ctx, adc, [0])
        ctx.set(adc.corrupt_crc, 1)
        await ctx.tick()
        ctx.set(adc.corrupt_crc, 0)
        frames["corrupted"] = await spi_frame(ctx, adc, [0])
        frames["after"] = await spi_frame(ctx, adc, [0])

    run_simulation(adc, host)
    assert words_to_bytes(frames["reset"]) == output_frame(0x0500, (0, 0, 0, 0))
    assert words_to_bytes(frames["data"]) == output_frame(0x050F, codes)
    assert words_to_bytes(frames["before_wreg"]) == output_frame(0x0500, codes)
    assert words_to_bytes(frames["wreg_ack"]) == output_frame(0b010_000010_0000000, codes)
    assert words_to_bytes(frames["mode"]) == output_frame(0x0110, codes)
    # STATUS with the RESET flag cleared by the WREG and the data already read.
    assert words_to_bytes(frames["status"]) == output_frame(0x0100, codes)
    assert words_to_bytes(frames["reset_ack"]) == output_frame(0xFF24, codes)
    good = output_frame(0x0500, codes)          # STATUS after the RESET command
    corrupted = words_to_bytes(frames["corrupted"])
    assert corrupted[:15] == good[:15] and corrupted != good
    crc = int.from_bytes(good[15:17], "big")
    assert corrupted[15:] == word16(crc ^ 1)
    assert words_to_bytes(frames["after"]) == good, "only one frame is corrupted"


@pytest.mark.parametrize("clk_freq, high_cycles", [
    (12_000_000, 6),     # 4 / 8.192 MHz = 488 ns = 5.9 cycles of 83 ns
    (48_000_000, 24),    # 23.4 cycles
    (1_000_000, 1),      # shorter than a cycle: at least one
])
def test_model_pulses_drdy_high_for_four_clkin_periods_when_data_are_unread(
        clk_freq, high_cycles):
    """Unread data: the next conversion makes DRDY high for t_w(DRH) = 4 t_CLKIN, then
    low again, and the unread set is replaced by the new one."""
    adc = ADS131M04Model(clk_freq=clk_freq)
    first, second = EDGE_SETS[:2]
    trace = []

    async def bench_process(ctx):
        await offer_to(ctx, adc, first)
        await ticks(ctx, 5)
        assert ctx.get(adc.drdy_n) == 0
        await offer_to(ctx, adc, second)
        for _ in range(high_cycles + 10):
            trace.append(ctx.get(adc.drdy_n))
            await ctx.tick()
        dout = await spi_frame(ctx, adc, [0])
        assert words_to_bytes(dout) == output_frame(0x050F, second)
        assert ctx.get(adc.lost_sets) == 1

    run_simulation(adc, bench_process)
    assert trace == [1] * high_cycles + [0] * 10


def test_reference_crc_definition_matches_a_frame_captured_from_the_part():
    """The CRC definition the tests use (CCITT, seed FFFFh, over the 24-bit words with
    their padding) reproduces a frame captured from a real ADS131M04 (TI E2E forum,
    thread 1011774): ``81 00 00``, twelve zero bytes, then ``b4 2d 00``. Without the
    padding the CRC would differ."""
    captured = bytes.fromhex("810000" + "00" * 12 + "b42d00")
    assert output_frame(0x8100, (0, 0, 0, 0)) == captured
    assert binascii.crc_hqx(bytes.fromhex("8100" + "00" * 8), 0xFFFF) != 0xB42D


# --- Parameters and declarations --------------------------------------------------------------

@pytest.mark.parametrize("sclk_divisor", [1, 0, -2, 2.0, True])
def test_receiver_refuses_sclk_divisor_below_two(sclk_divisor):
    """The SCLK divisor must be an integer of at least 2 cycles per half period."""
    with pytest.raises(ValueError, match="SCLK divisor"):
        ADS131M04Receiver(sclk_divisor=sclk_divisor)


@pytest.mark.parametrize("osr", [128, 256, 2048, 0, "512", True])
def test_receiver_refuses_osr_other_than_512_or_1024(osr):
    """Only the OSRs for 8 and 4 kSPS are configurable."""
    with pytest.raises(ValueError, match="OSR"):
        ADS131M04Receiver(sclk_divisor=2, osr=osr)


@pytest.mark.parametrize("devices", [0, -1, True, 1.5])
def test_receiver_refuses_devices_other_than_a_positive_integer(devices):
    """One ADC or more, counted with an integer."""
    with pytest.raises(ValueError, match="devices"):
        ADS131M04Receiver(sclk_divisor=2, devices=devices)
    with pytest.raises(ValueError, match="devices"):
        sample_layout(devices)


def test_receiver_ports_for_two_adcs():
    """One DOUT per ADC, one DRDY, and sample sets of eight 24-bit codes; one ADC keeps
    :data:`SAMPLE_LAYOUT`."""
    receiver = ADS131M04Receiver(sclk_divisor=2, devices=2)
    assert receiver.devices == 2
    assert (len(receiver.cipo), len(receiver.drdy_n)) == (2, 1)
    assert receiver.samples.payload.shape() == sample_layout(2) == \
        data.ArrayLayout(signed(24), 8)
    assert sample_layout(1) == SAMPLE_LAYOUT == data.ArrayLayout(signed(24), 4)
    assert ADS131M04Receiver(sclk_divisor=2).samples.payload.shape() == SAMPLE_LAYOUT


@pytest.mark.parametrize("osr, rate", [(512, 8000), (1024, 4000)])
def test_receiver_reports_its_configuration(osr, rate):
    """Data rate at 8.192 MHz CLKIN (f_MOD = 4.096 MHz / OSR) and the CLOCK value written."""
    receiver = ADS131M04Receiver(sclk_divisor=3, osr=osr)
    assert (receiver.osr, receiver.sclk_divisor) == (osr, 3)
    assert receiver.data_rate_hz == rate == 4_096_000 // osr
    assert receiver.clock_value == CLOCK_FOR_OSR[osr]
    assert receiver.frame_cycles == (1 + 2 * 144) * 3


def test_status_register_declares_the_receiver_counters():
    """``adc_status`` is read-only and each of its fields is a receiver port of the
    same width, so the metrology top can wire it field by field."""
    (register,) = ADS131M04Receiver.REGISTERS
    assert register.name == "adc_status" and register.access is Access.RO
    receiver = ADS131M04Receiver(sclk_divisor=2)
    for field in register.fields:
        assert len(getattr(receiver, field.name)) == field.width, field.name
    assert [field.name for field in register.fields] == \
        ["crc_errors", "missed_frames", "overruns", "configured"]


@pytest.mark.parametrize("module", ["refmeter.gateware.adc.ads131m04", "refmeter.sim.ads131m04"])
def test_adc_modules_import_on_their_own(module, tmp_path):
    """Each ADC module can be the first one a fresh interpreter imports."""
    result = subprocess.run([sys.executable, "-c", f"import {module}"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.strip().splitlines()[-1:]
