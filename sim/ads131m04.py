"""A synthesizable model of the TI ADS131M04's digital side, for simulation.

The analogue world hands the model conversion results on a stream (one sample set per
conversion, at whatever rate the harness chooses); the model plays the SPI peripheral
the way the datasheet describes (see ``refmeter.gateware.adc.ads131m04`` for the facts
and their sections):

* SPI mode 1, 24-bit words, six-word frames: DOUT changes one clock cycle after SCLK
  rises (our t\\ :sub:`p(SCDO)`), DIN is sampled on SCLK falling edges.
* Out: the response to the previous full frame's command, the four channels of the
  latest conversion, and the CCITT output CRC over the first five words, padding
  included.
* In: NULL, RESET, STANDBY/WAKEUP/LOCK/UNLOCK (answered, not acted on), WREG (MODE and
  CLOCK are stored; other addresses are acknowledged and ignored) and RREG of one
  register (ID, STATUS, MODE, CLOCK; others read 0). A command takes effect only when
  its frame was clocked in completely (144 SCLK cycles).
* DRDY, as with DRDY_FMT = 0: falls when a conversion is loaded, rises once the
  channel words of a frame have been clocked out. A conversion that completes while
  the previous one is unread makes DRDY high for t\\ :sub:`w(DRH)` = 4 t\\ :sub:`CLKIN`
  before it falls again; one that completes during a frame is held back until CS rises
  and blocks that pulse, so DRDY stays low.

Simplifications: the model keeps one conversion and one held-back conversion; a newer
one replaces an unread one (counted in ``lost_sets``), where the real part keeps a
two-deep FIFO per channel (datasheet §8.5.1.9.1). It does not model the input CRC,
the SPI timeout, standby, the lock, multi-register RREG data words, or the filter
settling after an OSR change.
"""

import math

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.crc import Processor
from amaranth.lib.wiring import In, Out

from refmeter.gateware.adc.ads131m04 import (
    CHANNELS, CLKIN_HZ, CLOCK_DEFAULT, CRC, CRC_COVERED_BITS, FRAME_BITS, FRAME_WORDS,
    ID_VALUE,
    MODE_DEFAULT, RESET_RESPONSE, SAMPLE_LAYOUT, WORD_BITS, Command, RegisterAddress,
)

__all__ = ["ADS131M04Model"]


class ADS131M04Model(wiring.Component):
    """SPI peripheral side of an ADS131M04, fed with conversion results.

    Parameters
    ----------
    clk_freq : int
        Frequency of the simulation's clock, Hz; sets t\\ :sub:`w(DRH)` = 4 periods of
        the 8.192 MHz CLKIN in cycles of it (6 cycles at 12 MHz).

    Attributes
    ----------
    sclk, cs_n, copi : Signal in
        SPI from the host (COPI is the ADC's DIN).
    cipo : Signal out
        The ADC's DOUT; 0 while CS is high (Hi-Z on the real part).
    drdy_n : Signal out
        Data ready, active low.
    codes : stream in
        The next conversion result, :data:`SAMPLE_LAYOUT`; always ready.
    corrupt_crc : Signal in
        Fault injection: a cycle high flips the least significant CRC bit of the next
        frame that starts.
    device_reset : Signal in
        A cycle high resets the device as its SYNC/RESET pin or a power dip would:
        registers to their reset values, the RESET flag set, unread data dropped.
    mode, clock : Signal(16) out
        The MODE and CLOCK registers, for test benches to check.
    register_writes : Signal(8) out
        WREG commands executed (wraps).
    lost_sets : Signal(16) out
        Conversion results replaced before a frame read them (wraps).
    """

    sclk: In(1)
    cs_n: In(1, init=1)
    copi: In(1)
    cipo: Out(1)
    drdy_n: Out(1, init=1)
    codes: In(stream.Signature(SAMPLE_LAYOUT))
    corrupt_crc: In(1)
    device_reset: In(1)
    mode: Out(16, init=MODE_DEFAULT)
    clock: Out(16, init=CLOCK_DEFAULT)
    register_writes: Out(8)
    lost_sets: Out(16)

    def __init__(self, *, clk_freq: int = 12_000_000):
        if not isinstance(clk_freq, int) or clk_freq <= 0:
            raise ValueError(f"Clock frequency must be a positive integer in Hz, not {clk_freq!r}")
        self._drdy_high_cycles = max(1, math.ceil(4 * clk_freq / CLKIN_HZ))
        super().__init__()

    @property
    def drdy_high_cycles(self) -> int:
        """t\\ :sub:`w(DRH)` in clock cycles."""
        return self._drdy_high_cycles

    def elaborate(self, platform):
        m = Module()

        # --- SPI edges -------------------------------------------------------------
        sclk_last = Signal()
        cs_n_last = Signal(init=1)
        m.d.sync += [sclk_last.eq(self.sclk), cs_n_last.eq(self.cs_n)]
        selected = ~self.cs_n
        frame_start = selected & cs_n_last
        frame_end = self.cs_n & ~cs_n_last
        rising = selected & ~cs_n_last & self.sclk & ~sclk_last
        falling = selected & ~cs_n_last & ~self.sclk & sclk_last

        # --- Conversions and DRDY ----------------------------------------------------
        conversion = Signal(SAMPLE_LAYOUT)   # what the next frame sends
        unread = Signal()                    # DRDY bits in STATUS; DRDY low
        held = Signal(SAMPLE_LAYOUT)         # completed during a frame or a DRDY pulse
        held_valid = Signal()
        drdy_high_timer = Signal(range(self._drdy_high_cycles + 1))

        m.d.comb += [
            self.codes.ready.eq(1),
            self.drdy_n.eq(~((unread | held_valid) & (drdy_high_timer == 0))),
        ]
        with m.If(drdy_high_timer != 0):
            m.d.sync += drdy_high_timer.eq(drdy_high_timer - 1)

        load_held = held_valid & ~selected & (drdy_high_timer == 0)
        lost_now = Signal(2)
        with m.If(load_held):
            m.d.sync += [conversion.eq(held), unread.eq(1), held_valid.eq(0)]
        with m.If(self.codes.valid):
            with m.If(selected | unread | held_valid):
                m.d.sync += [held.eq(self.codes.payload), held_valid.eq(1)]
                with m.If(~selected & (unread | load_held) & (drdy_high_timer == 0)):
                    m.d.sync += drdy_high_timer.eq(self._drdy_high_cycles)
            with m.Else():
                m.d.sync += [conversion.eq(self.codes.payload), unread.eq(1)]
        m.d.comb += lost_now.eq((load_held & unread)
                                + (self.codes.valid & held_valid & ~load_held))
        m.d.sync += self.lost_sets.eq(self.lost_sets + lost_now)

        # --- Registers and responses --------------------------------------------------
        status = Signal(16)
        m.d.comb += status.eq(Cat(
            unread.replicate(CHANNELS),      # DRDY3..0
            Const(0, 4),                     # reserved
            self.mode[8:10],                 # WLENGTH
            self.mode[10],                   # RESET
            self.mode[11],                   # CRC_TYPE
            Const(0, 4),                     # CRC_ERR, REG_MAP, F_RESYNC, LOCK
        ))
        response_is_status = Signal(init=1)
        response_word = Signal(16)

        # --- DOUT -----------------------------------------------------------------------
        m.submodules.crc = crc = Processor(CRC(data_width=1))
        dout = Signal(FRAME_BITS)
        dout_index = Signal(range(FRAME_BITS + 1))
        corrupt_next = Signal()
        corrupt_this = Signal()
        with m.If(self.corrupt_crc):
            m.d.sync += corrupt_next.eq(1)

        with m.If(frame_start):
            m.d.comb += crc.start.eq(1)
            m.d.sync += [
                dout.eq(Cat(
                    Const(0, WORD_BITS),                                   # CRC word
                    *(conversion[channel] for channel in reversed(range(CHANNELS))),
                    Const(0, 8),
                    Mux(response_is_status, status, response_word),
                )),
                dout_index.eq(0),
                corrupt_this.eq(corrupt_next),
                corrupt_next.eq(self.corrupt_crc),
            ]
        with m.Elif(rising & (dout_index != FRAME_BITS)):
            m.d.sync += dout_index.eq(dout_index + 1)
            with m.If(dout_index == CRC_COVERED_BITS):
                crc_word = crc.crc ^ corrupt_this
                m.d.sync += [self.cipo.eq(crc_word[-1]),
                             dout.eq(Cat(Const(0, FRAME_BITS - 15), crc_word[:-1]))]
            with m.Else():
                m.d.sync += [self.cipo.eq(dout[-1]), dout.eq(dout << 1)]
                m.d.comb += [crc.data.eq(dout[-1]),
                             crc.valid.eq(dout_index < CRC_COVERED_BITS)]
        with m.If(self.cs_n):
            m.d.sync += self.cipo.eq(0)

        # --- DIN --------------------------------------------------------------------------
        din = Signal(FRAME_BITS)
        din_count = Signal(range(FRAME_BITS + 1))
        with m.If(frame_start):
            m.d.sync += din_count.eq(0)
        with m.Elif(falling & (din_count != FRAME_BITS)):
            m.d.sync += [din.eq(Cat(self.copi, din)), din_count.eq(din_count + 1)]
            with m.If(din_count == CRC_COVERED_BITS - 1):
                # The last bit of the last channel word has gone: DRDY rises, unless a
                # conversion is being held back.
                m.d.sync += unread.eq(0)

        def din_word(index):
            """Word ``index`` of the frame clocked in, without its padding (16 bits)."""
            top = FRAME_BITS - WORD_BITS * index
            return din[top - 16:top]

        command = din_word(0)
        address = command[7:13]
        count_less_one = command[0:7]

        def register_value(register_address):
            value = Signal(16)
            with m.Switch(register_address):
                with m.Case(RegisterAddress.ID):
                    m.d.comb += value.eq(ID_VALUE)
                with m.Case(RegisterAddress.STATUS):
                    m.d.comb += value.eq(status)
                with m.Case(RegisterAddress.MODE):
                    m.d.comb += value.eq(self.mode)
                with m.Case(RegisterAddress.CLOCK):
                    m.d.comb += value.eq(self.clock)
            return value

        read_value = register_value(address)

        def respond(word):
            m.d.sync += [response_is_status.eq(0), response_word.eq(word)]

        with m.If(frame_end):
            m.d.sync += response_is_status.eq(1)
            with m.If(din_count == FRAME_BITS):
                with m.Switch(command):
                    with m.Case(Command.RESET):
                        respond(RESET_RESPONSE)
                        self._reset_registers(m)
                    with m.Case(Command.STANDBY, Command.WAKEUP, Command.LOCK, Command.UNLOCK):
                        respond(command)
                    with m.Case("011- ---- ---- ----"):                    # WREG
                        respond(Cat(command[:13], Const(0b010, 3)))
                        m.d.sync += self.register_writes.eq(self.register_writes + 1)
                        # Data words follow the command: at most five fit in a frame.
                        for offset in range(FRAME_WORDS - 1):
                            with m.If(offset <= count_less_one):
                                with m.Switch(address + offset):
                                    with m.Case(RegisterAddress.MODE):
                                        m.d.sync += self.mode.eq(din_word(1 + offset))
                                    with m.Case(RegisterAddress.CLOCK):
                                        m.d.sync += self.clock.eq(din_word(1 + offset))
                    with m.Case("101- ---- ---- ----"):                    # RREG
                        with m.If(count_less_one == 0):
                            respond(read_value)
                        with m.Else():
                            respond(Cat(command[:13], Const(0b111, 3)))

        with m.If(self.device_reset):
            self._reset_registers(m)
            m.d.sync += [unread.eq(0), held_valid.eq(0), drdy_high_timer.eq(0),
                         response_is_status.eq(1)]
        return m

    def _reset_registers(self, m):
        m.d.sync += [self.mode.eq(MODE_DEFAULT), self.clock.eq(CLOCK_DEFAULT)]
