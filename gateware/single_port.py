"""A single-port RAM: the iCE40 UltraPlus's SPRAMs where the platform has them, a
:class:`~amaranth.lib.memory.Memory` everywhere else (other FPGAs, the simulators).

The UP5K has 30 block RAMs (EBR, 4 kbit each) and four SPRAMs of 16384 x 16 bits
(256 kbit each) that Yosys only uses when they are instantiated. The two
implementations behave alike at the port, so the simulators test the logic around
the RAM that the UP5K builds.
"""

from amaranth.hdl import ClockSignal, Instance, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["SinglePortRam", "SPRAM_DEPTH", "SPRAM_WIDTH", "has_spram"]

#: Words and bits of one ``SB_SPRAM256KA``.
SPRAM_DEPTH = 16384
SPRAM_WIDTH = 16
#: iCE40 devices with SPRAMs (the UltraPlus family), as Amaranth names them.
_SPRAM_DEVICES = ("iCE40UP3K", "iCE40UP5K")


def has_spram(platform) -> bool:
    """Whether ``platform`` (``None`` in simulation) is an iCE40 with SPRAMs."""
    return getattr(platform, "device", None) in _SPRAM_DEVICES


class SinglePortRam(wiring.Component):
    """``depth`` words of ``width`` bits, one access a cycle.

    Ports: ``addr``, ``w_data``, ``w_en`` in; ``r_data`` out. In a cycle with
    ``w_en`` high, ``w_data`` is written at ``addr``; in any other cycle the word at
    ``addr`` is read, and ``r_data`` shows it from the next cycle until the next
    read. The RAM has no initial contents.

    On an iCE40 UltraPlus it is ``width / 16`` SPRAMs side by side, so ``width``
    must be a multiple of 16 and ``depth`` at most 16384.
    """

    def __init__(self, *, depth: int, width: int):
        if depth < 1 or width < 1:
            raise ValueError(f"A RAM needs at least one word of one bit, not {depth} x {width}")
        self._depth = depth
        self._width = width
        super().__init__({
            "addr": In(range(depth)),
            "w_data": In(width),
            "w_en": In(1),
            "r_data": Out(width),
        })

    def elaborate(self, platform):
        spram = has_spram(platform)
        if spram and (self._width % SPRAM_WIDTH or self._depth > SPRAM_DEPTH):
            raise ValueError(f"SPRAMs hold up to {SPRAM_DEPTH} words in multiples of "
                             f"{SPRAM_WIDTH} bits, not {self._depth} x {self._width}")
        m = Module()
        if spram:
            address = Signal(14)
            m.d.comb += address.eq(self.addr)
            for lane in range(self._width // SPRAM_WIDTH):
                bits = slice(lane * SPRAM_WIDTH, (lane + 1) * SPRAM_WIDTH)
                m.submodules[f"spram_{lane}"] = Instance(
                    "SB_SPRAM256KA",
                    i_CLOCK=ClockSignal("sync"),
                    i_ADDRESS=address,
                    i_DATAIN=self.w_data[bits],
                    i_MASKWREN=0b1111,
                    i_WREN=self.w_en,
                    i_CHIPSELECT=1,
                    i_STANDBY=0,
                    i_SLEEP=0,
                    i_POWEROFF=1,  # active low: powered
                    o_DATAOUT=self.r_data[bits])
        else:
            m.submodules.memory = memory = Memory(shape=self._width, depth=self._depth, init=[])
            write = memory.write_port()
            read = memory.read_port(transparent_for=())
            m.d.comb += [
                write.addr.eq(self.addr), write.data.eq(self.w_data), write.en.eq(self.w_en),
                read.addr.eq(self.addr), read.en.eq(~self.w_en),
                self.r_data.eq(read.data),
            ]
        return m
