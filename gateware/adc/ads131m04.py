"""FPGA side of a TI ADS131M04 metering ADC: configures it once, then reads one SPI
frame per conversion and streams the four channels.

Datasheet facts this module relies on (ADS131M04 / ADS131M04-Q1, TI SBASA13A; the
section numbers are those of that document, see ``docs/metrology.md``):

* SPI mode 1 (CPOL 0, CPHA 1): the host changes DIN on SCLK rising edges and the ADC
  samples it on falling edges; the ADC changes DOUT on rising edges, at most
  t\\ :sub:`p(SCDO)` = 20 ns after them, and the host samples it on falling edges
  (DIN and DOUT pin descriptions in §8.5.1; §6.7). DOUT is Hi-Z while CS is high.
  SCLK period at least 40 ns, CS high at least 15 ns (§6.6).
* Words are 24 bits after reset (MODE.WLENGTH = 01b). Commands, responses, register
  values and CRCs are 16 bits, MSB-aligned and zero-padded; conversion data are 24-bit
  two's complement (§8.5.1.8).
* A frame of the 4-channel part is six words. In: command, then zeros (or the input
  CRC, disabled by default). Out: the response to the *previous* frame's command, the
  four channels, and the output CRC (§8.5.1.7, Figure 8-18).
* The output CRC cannot be disabled. MODE.CRC_TYPE = 0 after reset selects CCITT
  (x^16 + x^12 + x^5 + 1), seeded with FFFFh; it covers every bit of the preceding
  words *including* their zero padding (§8.3.12). With 24-bit words that is 15 bytes.
* Responses (Table 8-11): NULL -> STATUS register; RESET -> FF24h;
  WREG ``011a aaaa annn nnnn`` -> ``010a aaaa ammm mmmm``; RREG of one register ->
  its value.
* Registers (Table 8-12): STATUS 01h (LOCK 15, F_RESYNC 14, REG_MAP 13, CRC_ERR 12,
  CRC_TYPE 11, RESET 10, WLENGTH 9:8, DRDY3..0 3:0; reset 0500h), MODE 02h (reset
  0510h, RESET flag in bit 10, cleared only by writing 0), CLOCK 03h (CH3..0_EN 11:8,
  TBM 5, OSR 4:2, PWR 1:0; reset 0F0Eh = all channels, OSR 1024, high resolution).
* With CLKIN = 8.192 MHz, f\\ :sub:`MOD` = 4.096 MHz: OSR 512 (010b) gives 8 kSPS and
  OSR 1024 (011b, the default) 4 kSPS (Table 8-2).
* DRDY (DRDY_FMT = 0, the default) falls when a conversion is ready and rises when its
  channel data have been shifted out. Unread data make it pulse high for
  t\\ :sub:`w(DRH)` = 4 t\\ :sub:`CLKIN` before the next fall; a conversion that
  completes *during* a read blocks that pulse, so DRDY simply stays low (§6.7,
  "DRDY" in §8.5.1).
"""

from amaranth.hdl import Cat, Const, Module, Signal, signed
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.crc import Processor, catalog
from amaranth.lib.wiring import In, Out

from ..registers import Access, Field, Register

__all__ = [
    "ADS131M04Receiver", "sample_layout", "SAMPLE_LAYOUT", "CRC",
    "CHANNELS", "WORD_BITS", "FRAME_WORDS", "FRAME_BITS", "CRC_COVERED_BITS",
    "CLKIN_HZ", "DATA_RATE_HZ", "RegisterAddress", "Command", "RESET_RESPONSE",
    "STATUS_RESET", "STATUS_DRDY_MASK", "MODE_DEFAULT", "MODE_RUN", "CLOCK_DEFAULT",
    "ID_VALUE", "wreg", "rreg", "wreg_response", "clock_register",
]

#: Channels of the ADS131M04, all converting simultaneously.
CHANNELS = 4
#: Bits per SPI word after reset (MODE.WLENGTH = 01b); this receiver never changes it.
WORD_BITS = 24
#: Words per frame: response/command, one per channel, CRC.
FRAME_WORDS = CHANNELS + 2
FRAME_BITS = FRAME_WORDS * WORD_BITS
#: Bits the output CRC covers: the response word and the channel words, padding included.
CRC_COVERED_BITS = (1 + CHANNELS) * WORD_BITS


def _check_devices(devices) -> None:
    if not isinstance(devices, int) or isinstance(devices, bool) or devices < 1:
        raise ValueError(f"Number of ADCs (devices) must be a positive integer, "
                         f"not {devices!r}")


def sample_layout(devices: int) -> data.ArrayLayout:
    """One sample set from ``devices`` ADCs converting together: their 24-bit two's
    complement codes, device 0's channels 0 to 3 first, then device 1's, and so on."""
    _check_devices(devices)
    return data.ArrayLayout(signed(24), CHANNELS * devices)


#: One sample set of one ADC: its channels' codes, channel 0 first.
SAMPLE_LAYOUT = sample_layout(1)

#: Output CRC with MODE.CRC_TYPE = 0 (the reset value): CCITT polynomial, seed FFFFh,
#: no reflection, no final XOR (Amaranth's CRC16_CCITT_FALSE; Python's
#: ``binascii.crc_hqx(data, 0xFFFF)``).
CRC = catalog.CRC16_CCITT_FALSE

#: Clock the ADC needs on CLKIN for its nominal rates, Hz.
CLKIN_HZ = 8_192_000
#: Output data rate for each OSR this receiver configures, samples/s per channel,
#: with CLKIN = 8.192 MHz in high-resolution mode.
DATA_RATE_HZ = {512: 8_000, 1024: 4_000}
_OSR_CODE = {512: 0b010, 1024: 0b011}


class RegisterAddress(enum.IntEnum, shape=6):
    """The registers this front end uses."""

    ID = 0x00
    STATUS = 0x01
    MODE = 0x02
    CLOCK = 0x03


class Command(enum.IntEnum, shape=16):
    """Fixed command words (RREG and WREG carry an address: see :func:`rreg`, :func:`wreg`)."""

    NULL = 0x0000
    RESET = 0x0011
    STANDBY = 0x0022
    WAKEUP = 0x0033
    LOCK = 0x0555
    UNLOCK = 0x0655


#: Response to RESET on the ADS131M04 (FF20h + channel count).
RESET_RESPONSE = 0xFF24
#: STATUS.RESET: the device was reset and MODE.RESET has not been cleared since.
STATUS_RESET = 1 << 10
#: STATUS.DRDY3..0: the channel has a conversion that has not been read.
STATUS_DRDY_MASK = (1 << CHANNELS) - 1
#: ID register: CHANCNT = 4 in bits 11:8; the low byte is a revision, left 0 here.
ID_VALUE = 0x2400
#: MODE after reset: 24-bit words, SPI timeout on, CCITT CRC, RESET flag set, DRDY
#: active low as a level.
MODE_DEFAULT = 0x0510
#: MODE as this receiver writes it: the reset value with the RESET flag cleared, so a
#: later device reset shows in STATUS.
MODE_RUN = MODE_DEFAULT & ~(1 << 10)
#: CLOCK after reset: all four channels on, OSR 1024, high-resolution power mode.
CLOCK_DEFAULT = 0x0F0E


def wreg(address: int, count: int) -> int:
    """WREG command word: write ``count`` registers from ``address``."""
    return 0x6000 | address << 7 | (count - 1)


def rreg(address: int, count: int) -> int:
    """RREG command word: read ``count`` registers from ``address``."""
    return 0xA000 | address << 7 | (count - 1)


def wreg_response(address: int, count: int) -> int:
    """What the frame after a WREG of ``count`` registers from ``address`` starts with."""
    return 0x4000 | address << 7 | (count - 1)


def clock_register(osr: int) -> int:
    """CLOCK value: all channels enabled, ``osr``, high-resolution power mode (PWR = 10b)."""
    return 0x0F00 | _OSR_CODE[osr] << 2 | 0b10


class _Step(enum.Enum, shape=2):
    """Where the receiver is in bringing the ADC up; each step is one frame."""

    WRITE = 0        # send WREG MODE, CLOCK
    CHECK_ACK = 1    # send RREG CLOCK; this frame's response must acknowledge the WREG
    CHECK_CLOCK = 2  # send NULL; this frame's response must be the CLOCK value written
    RUN = 3          # send NULL; the response is STATUS, the channels are samples


class ADS131M04Receiver(wiring.Component):
    """The FPGA side of one or more ADS131M04s on SPI mode 1.

    After reset the receiver configures the ADC and then reads one frame for every
    conversion, each frame started by DRDY falling. Every frame, configuration frames
    included, is clocked out as six 24-bit words and checked against its output CRC.

    With ``devices`` > 1 (a three-phase meter needs two ADCs: three voltages, three
    phase currents and the neutral current), the ADCs share SCLK, CS, DIN, CLKIN and
    SYNC/RESET, each has its own DOUT (bit *k* of :attr:`cipo` for device *k*), and only
    device 0's DRDY is used. They must be clocked from the same CLKIN, so that they
    convert together and device 0's DRDY stands for all of them (a device converting
    later than device 0 shows as stale data, see :attr:`missed_frames`). Every device
    receives the same commands, so configuration is broadcast, and every device's frame
    is checked on its own: its own output CRC and its own response word.

    Configuration, one frame per DRDY:

    1. WREG MODE and CLOCK (``wreg(MODE, 2)``): MODE as after reset but with its RESET
       flag cleared, CLOCK with all four channels, ``osr`` and high-resolution mode.
    2. RREG CLOCK. This frame's response must be the WREG acknowledgement
       ``wreg_response(MODE, 2)`` = 4101h.
    3. NULL. This frame's response must be the CLOCK value written: ``configured``
       goes high.

    A step passes only if every device's response and CRC pass; a failed check (wrong
    response or bad CRC) starts again at 1. From then on every frame sends NULL and its
    response is STATUS. A frame's samples are used only if every device's CRC is good
    and no device's STATUS reports a reset or stale data. A STATUS with the RESET flag
    set means that ADC was reset behind our back (power dip, SYNC/RESET pin), so
    ``configured`` drops and configuration starts again, for all devices.

    Parameters
    ----------
    sclk_divisor : int
        System clock cycles per SCLK *half* period, at least 2 (SCLK =
        f\\ :sub:`clk` / (2 x ``sclk_divisor``)). Two cycles give DOUT a whole clock
        period after the rising edge that launches it before the falling edge where it
        is sampled, whatever the pin delays. Choose it so that SCLK stays at or below
        25 MHz and :attr:`frame_cycles` fits comfortably in one data period (at 12 MHz
        and 8 kSPS, 2 gives 3 MHz SCLK and 48 us frames in 125 us periods).
    osr : int
        Oversampling ratio to configure: 512 (8 kSPS) or 1024 (4 kSPS) with the
        8.192 MHz CLKIN.
    devices : int
        Number of ADCs read together, wired as described above; 1 by default.

    Attributes
    ----------
    sclk, cs_n, copi : Signal out
        SPI to the ADCs (COPI goes to their DIN). CS is held low for exactly one frame.
    cipo : Signal(devices) in
        The ADCs' DOUT, bit *k* from device *k*. Not synchronised: it is sampled on our
        own SCLK.
    drdy_n : Signal in
        Device 0's DRDY, asynchronous; synchronised inside.
    samples : stream out
        One sample set per conversion read, :func:`sample_layout` (``devices``): device
        0's four channels, then device 1's. ``valid`` stays high until the set is taken.
    crc_errors : Signal(16) out
        Frames in which at least one device's output CRC failed (wraps), at most one
        per frame. Such frames are never emitted.
    missed_frames : Signal(16) out
        Once configured, frames after which a sample set may be missing (wraps): a
        conversion completed while the frame was being read (DRDY fell during the
        frame, or was low again at its end), or a device's STATUS reports a device
        reset or data that are not new (DRDY3..0 not all set). At most one per frame.
    overruns : Signal(16) out
        Sample sets dropped because the previous one had not been taken (wraps).
    configured : Signal out
        Every device's CLOCK write has been acknowledged and read back; samples flow.
    """

    REGISTERS = (
        Register("adc_status", Access.RO, (
            Field("crc_errors", 16, "ADC frames with a bad output CRC (on any ADC), "
                                    "never used (wraps)"),
            Field("missed_frames", 16, "frames after which a sample set may be missing: "
                                       "late read, ADC reset or stale data (wraps)"),
            Field("overruns", 16, "sample sets dropped because the DSP had not taken "
                                  "the previous one (wraps)"),
            Field("configured", 1, "1 once every ADC's CLOCK register write is confirmed"),
        ), "ADS131M04 front-end health, for telling a noisy link from a lost ADC"),
    )

    #: Smallest ``sclk_divisor`` (see the class description).
    MIN_SCLK_DIVISOR = 2

    def __init__(self, *, sclk_divisor: int, osr: int = 512, devices: int = 1):
        if (not isinstance(sclk_divisor, int) or isinstance(sclk_divisor, bool)
                or sclk_divisor < self.MIN_SCLK_DIVISOR):
            raise ValueError(f"SCLK divisor must be an integer of at least "
                             f"{self.MIN_SCLK_DIVISOR} cycles per half period, "
                             f"not {sclk_divisor!r}")
        if osr not in DATA_RATE_HZ or isinstance(osr, bool):
            raise ValueError(f"OSR must be one of {', '.join(map(str, DATA_RATE_HZ))} "
                             f"(8 or 4 kSPS with an 8.192 MHz CLKIN), not {osr!r}")
        _check_devices(devices)
        self._sclk_divisor = sclk_divisor
        self._osr = osr
        self._devices = devices
        super().__init__({
            "sclk": Out(1),
            "cs_n": Out(1, init=1),
            "copi": Out(1),
            "cipo": In(devices),
            "drdy_n": In(1, init=1),
            "samples": Out(stream.Signature(sample_layout(devices))),
            "crc_errors": Out(16),
            "missed_frames": Out(16),
            "overruns": Out(16),
            "configured": Out(1),
        })

    @property
    def sclk_divisor(self) -> int:
        return self._sclk_divisor

    @property
    def osr(self) -> int:
        return self._osr

    @property
    def devices(self) -> int:
        """ADCs read together."""
        return self._devices

    @property
    def data_rate_hz(self) -> int:
        """Sample sets per second once configured, with an 8.192 MHz CLKIN."""
        return DATA_RATE_HZ[self._osr]

    @property
    def clock_value(self) -> int:
        """The CLOCK register value this receiver writes."""
        return clock_register(self._osr)

    @property
    def frame_cycles(self) -> int:
        """System clock cycles CS stays low for one frame: a half period from CS
        falling to the first SCLK edge, 2 x 144 half periods of SCLK, the last of them
        ending with CS rising."""
        return (2 * FRAME_BITS + 1) * self._sclk_divisor

    def elaborate(self, platform):
        m = Module()
        divisor = self._sclk_divisor

        drdy_n = Signal(init=1)
        m.submodules.drdy_sync = FFSynchronizer(self.drdy_n, drdy_n, init=1)
        drdy_n_last = Signal(init=1)
        m.d.sync += drdy_n_last.eq(drdy_n)
        drdy_fell = drdy_n_last & ~drdy_n

        # One output CRC per device, over its own DOUT.
        crcs = []
        for device in range(self._devices):
            m.submodules[f"crc{device}"] = crc = Processor(CRC(data_width=1))
            crcs.append(crc)

        step = Signal(_Step)
        pending = Signal()                        # a conversion is waiting to be read
        timer = Signal(range(divisor))
        bit_index = Signal(range(FRAME_BITS))
        # The request: words 0..2 (command and up to two register values), sent MSB
        # first; the remaining words are zeros.
        request = Signal(3 * WORD_BITS)
        # Each device's response word and four channel words, received MSB first.
        received = [Signal(CRC_COVERED_BITS, name=f"received{device}")
                    for device in range(self._devices)]

        def word(bits, index):
            return bits[CRC_COVERED_BITS - WORD_BITS * (index + 1):
                        CRC_COVERED_BITS - WORD_BITS * index]

        # 16 bits, MSB-aligned in the word.
        responses = [word(bits, 0)[8:] for bits in received]
        # Device 0's channels, then device 1's: the order of the sample set.
        channels = [word(bits, 1 + channel)
                    for bits in received for channel in range(CHANNELS)]

        # A conversion that arrives while a frame is under way is read right after it.
        with m.If(drdy_fell):
            m.d.sync += pending.eq(1)

        with m.If(self.samples.ready):
            m.d.sync += self.samples.valid.eq(0)

        def rising_edge():
            m.d.sync += [self.sclk.eq(1), self.copi.eq(request[-1]),
                         request.eq(request << 1), timer.eq(divisor - 1)]

        def count_down():
            m.d.sync += timer.eq(timer - 1)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(pending):
                    with m.Switch(step):
                        with m.Case(_Step.WRITE):
                            m.d.sync += request.eq(Cat(
                                Const(clock_register(self._osr) << 8, WORD_BITS),
                                Const(MODE_RUN << 8, WORD_BITS),
                                Const(wreg(RegisterAddress.MODE, 2) << 8, WORD_BITS)))
                        with m.Case(_Step.CHECK_ACK):
                            m.d.sync += request.eq(
                                Const(rreg(RegisterAddress.CLOCK, 1) << 8, WORD_BITS)
                                << 2 * WORD_BITS)
                        with m.Default():
                            m.d.sync += request.eq(0)      # NULL, then zeros
                    m.d.comb += [crc.start.eq(1) for crc in crcs]
                    m.d.sync += [self.cs_n.eq(0), timer.eq(divisor - 1), bit_index.eq(0)]
                    with m.If(~drdy_fell):
                        m.d.sync += pending.eq(0)
                    m.next = "SELECT"
            with m.State("SELECT"):        # t_d(CSSC): CS low before the first SCLK edge
                with m.If(timer != 0):
                    count_down()
                with m.Else():
                    rising_edge()
                    m.next = "SCLK-HIGH"
            with m.State("SCLK-HIGH"):
                with m.If(timer != 0):
                    count_down()
                with m.Else():
                    # Falling edge: DOUT has been stable since the rising edge's
                    # t_p(SCDO); sample it now.
                    m.d.sync += [self.sclk.eq(0), timer.eq(divisor - 1),
                                 bit_index.eq(bit_index + 1)]
                    for device, (crc, bits) in enumerate(zip(crcs, received)):
                        m.d.comb += [crc.data.eq(self.cipo[device]),
                                     crc.valid.eq(bit_index < CRC_COVERED_BITS + 16)]
                        with m.If(bit_index < CRC_COVERED_BITS):
                            m.d.sync += bits.eq(Cat(self.cipo[device], bits))
                    with m.If(bit_index == FRAME_BITS - 1):
                        m.next = "DESELECT"
                    with m.Else():
                        m.next = "SCLK-LOW"
            with m.State("SCLK-LOW"):
                with m.If(timer != 0):
                    count_down()
                with m.Else():
                    rising_edge()
                    m.next = "SCLK-HIGH"
            with m.State("DESELECT"):      # t_d(SCCS): last falling edge to CS high
                with m.If(timer != 0):
                    count_down()
                with m.Else():
                    m.d.sync += [self.cs_n.eq(1), self.copi.eq(0), timer.eq(divisor - 1)]
                    m.next = "CHECK"
            with m.State("CHECK"):
                self._check_frame(m, step, crcs, responses, channels,
                                  late=pending | ~drdy_n)
                with m.If(~drdy_n):
                    # DRDY stayed low: a conversion completed during the read, and the
                    # ADC blocked the high pulse that would have made an edge.
                    m.d.sync += pending.eq(1)
                m.next = "GAP"
            with m.State("GAP"):           # t_w(CSH): CS high between frames
                with m.If(timer != 0):
                    count_down()
                with m.Else():
                    m.next = "IDLE"
        return m

    def _check_frame(self, m, step, crcs, responses, channels, *, late):
        """One cycle after CS rises: judge the frame just read and move on a step.

        ``crcs`` and ``responses`` have one entry per device, ``channels`` all devices'
        channel words in sample-set order. ``late`` is true when another conversion
        completed while the frame was read.
        """
        crc_ok = Cat(crc.match_detected for crc in crcs).all()
        with m.If(~crc_ok):
            m.d.sync += self.crc_errors.eq(self.crc_errors + 1)

        def every_response_is(value):
            return Cat(response == value for response in responses).all()

        def any_status_shows(condition):
            """A device whose frame passed its own CRC reports ``condition`` (of its
            STATUS word)."""
            return Cat(crc.match_detected & condition(response)
                       for crc, response in zip(crcs, responses)).any()

        with m.Switch(step):
            with m.Case(_Step.WRITE):
                # The response here answers whatever came before; the WREG went out.
                m.d.sync += step.eq(_Step.CHECK_ACK)
            with m.Case(_Step.CHECK_ACK):
                with m.If(crc_ok & every_response_is(wreg_response(RegisterAddress.MODE, 2))):
                    m.d.sync += step.eq(_Step.CHECK_CLOCK)
                with m.Else():
                    m.d.sync += step.eq(_Step.WRITE)
            with m.Case(_Step.CHECK_CLOCK):
                with m.If(crc_ok & every_response_is(clock_register(self._osr))):
                    m.d.sync += [step.eq(_Step.RUN), self.configured.eq(1)]
                with m.Else():
                    m.d.sync += step.eq(_Step.WRITE)
            with m.Case(_Step.RUN):
                device_reset = any_status_shows(
                    lambda status: (status & STATUS_RESET) != 0)
                stale = any_status_shows(
                    lambda status: (status & STATUS_DRDY_MASK) != STATUS_DRDY_MASK)
                with m.If(late | device_reset | stale):
                    m.d.sync += self.missed_frames.eq(self.missed_frames + 1)
                with m.If(device_reset):
                    m.d.sync += [step.eq(_Step.WRITE), self.configured.eq(0)]
                with m.Elif(crc_ok & ~stale):
                    with m.If(self.samples.valid & ~self.samples.ready):
                        # A stream's payload may not change until taken: keep the
                        # older set, drop this one.
                        m.d.sync += self.overruns.eq(self.overruns + 1)
                    with m.Else():
                        m.d.sync += [self.samples.payload[channel].eq(code)
                                     for channel, code in enumerate(channels)]
                        m.d.sync += self.samples.valid.eq(1)
