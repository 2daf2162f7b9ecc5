"""Shared pieces of the gateware tests: a simulation runner, an independent 8N1 line
model, a small register map, and the host-link frame format written out by hand.

Nothing here reuses the code under test to compute an expectation: response frames
are assembled byte by byte from the format in ``hostlink/protocol.py`` with
:func:`binascii.crc_hqx`, and the register bank's answers come from the rules in its
docstring.
"""

import binascii
import os
import re
from pathlib import Path
from typing import Iterable

# Importing the host-link package before `registers` sidesteps a circular import:
# `import refmeter.gateware.registers` on its own fails (see
# test_registers.py::test_gateware_module_imports_on_its_own).
import refmeter.gateware.hostlink  # noqa: F401
from amaranth.sim import Simulator
from refmeter.gateware.hostlink.protocol import Command, Status
from refmeter.gateware.registers import Access, Field, Register, RegisterMap

__all__ = [
    "run_simulation", "ticks", "uart_levels", "uart_drive", "uart_read_byte",
    "demo_register_map", "DEMO_RO_VALUES", "response_frame", "expected_status",
]

#: Start of frame, as written in the protocol description (not imported, on purpose).
SOF_BYTE = 0x5A


def run_simulation(dut, *testbenches, background=()) -> None:
    """Run ``dut`` with a 1 MHz clock until every testbench in ``testbenches`` returns.

    ``background`` testbenches (monitors) run alongside and are stopped with the
    simulation. With ``GENERATE_VCDS=1`` the waveform is written to
    ``vcd/<test name>.vcd`` under the current directory.
    """
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for testbench in testbenches:
        sim.add_testbench(testbench)
    for testbench in background:
        sim.add_testbench(testbench, background=True)
    if os.environ.get("GENERATE_VCDS") == "1":
        test_name = os.environ.get("PYTEST_CURRENT_TEST", "simulation").split(" ")[0]
        path = Path("vcd") / (re.sub(r"[^\w.-]+", "_", test_name) + ".vcd")
        path.parent.mkdir(exist_ok=True)
        with sim.write_vcd(str(path)):
            sim.run()
    else:
        sim.run()


async def ticks(ctx, count: int) -> None:
    """Wait ``count`` clock cycles.

    A loop of plain ``ctx.tick()`` rather than ``ctx.tick().repeat()``/``.until()``:
    those wrap an async generator, and when one testbench fails while another waits in
    one, the abandoned generator raises "aclose(): asynchronous generator is already
    running" at teardown, burying the real failure under an internal error.
    """
    for _ in range(count):
        await ctx.tick()


# --- 8N1 line model ------------------------------------------------------------------

def uart_levels(data: Iterable[int], *, stop_bit: int = 1) -> list[int]:
    """Line levels of ``data`` sent as 8N1 back to back: start bit (0), eight data bits
    least significant first, stop bit (normally 1), one level per bit time."""
    levels = []
    for byte in data:
        levels.append(0)
        levels.extend((byte >> bit) & 1 for bit in range(8))
        levels.append(stop_bit)
    return levels


async def uart_drive(ctx, line, levels: list[int], *, period: float) -> None:
    """Put ``levels`` on ``line``, each for ``period`` clock cycles.

    A fractional ``period`` models a transmitter with another clock: edge ``i`` is at
    cycle ``round(i * period)``, so the error does not accumulate. The line keeps the
    last level afterwards.
    """
    for index, level in enumerate(levels):
        ctx.set(line, level)
        await ticks(ctx, round((index + 1) * period) - round(index * period))


async def uart_read_byte(ctx, line, *, divisor: int, timeout: int) -> int:
    """Receive one 8N1 byte from ``line`` like a textbook receiver.

    Waits up to ``timeout`` cycles for the line to go low, then samples the start bit,
    the eight data bits and the stop bit at their centres, ``divisor`` cycles apart.
    Returns with the line at the centre of the stop bit.
    """
    waited = 0
    while ctx.get(line):
        await ctx.tick()
        waited += 1
        if waited > timeout:
            raise AssertionError(f"no start bit within {timeout} cycles")
    await ticks(ctx, divisor // 2)
    assert ctx.get(line) == 0, "start bit is not low at its centre"
    byte = 0
    for bit in range(8):
        await ticks(ctx, divisor)
        byte |= ctx.get(line) << bit
    await ticks(ctx, divisor)
    assert ctx.get(line) == 1, f"stop bit is low after byte {byte:#04x}"
    return byte


# --- A small register map ---------------------------------------------------------------

def demo_register_map() -> RegisterMap:
    """A test-only map with one register of each kind and a multi-field one.

    ====== =================== ====== ===== ===============================
    addr   name                access bytes fields (lsb first)
    ====== =================== ====== ===== ===============================
    0x0000 serial_number       ro     4     value:32
    0x0001 display_contrast    rw     1     value:8 = 0x40
    0x0002 tariff_rate         rw     3     value:24 = 0x012345
    0x0010 unlock_key          wo     2     value:16
    0x0011 relay_control       rw     2     closed:1 = 1, mode:3 = 5, cooldown_s:10 = 300
    0x0100 supply_status       ro     4     voltage_dv:16, frequency_chz:16
    ====== =================== ====== ===== ===============================
    """
    register_map = RegisterMap()
    register_map.add(0x0000, Register.number("serial_number", Access.RO, 32, "meter serial"))
    register_map.add(0x0001, Register.number("display_contrast", Access.RW, 8, "LCD contrast",
                                             init=0x40))
    register_map.add(0x0002, Register.number("tariff_rate", Access.RW, 24, "price, mEUR/kWh",
                                             init=0x012345))
    register_map.add(0x0010, Register.number("unlock_key", Access.WO, 16, "maintenance key"))
    register_map.add(0x0011, Register("relay_control", Access.RW, (
        Field("closed", 1, "relay closed", init=1),
        Field("mode", 3, "switching mode", init=5),
        Field("cooldown_s", 10, "minimum time between switchings, s", init=300),
    ), "load relay control"))
    register_map.add(0x0100, Register("supply_status", Access.RO, (
        Field("voltage_dv", 16, "RMS voltage, dV"),
        Field("frequency_chz", 16, "line frequency, cHz"),
    ), "supply measurements"))
    return register_map


#: Values the tests drive on the read-only registers of :func:`demo_register_map`.
DEMO_RO_VALUES = {
    "serial_number": 0xC0FFEE42,
    "supply_status": 0x1388_08FC,  # 50.00 Hz, 230.0 V
}


# --- The frame format, by hand -----------------------------------------------------------

def response_frame(command: int, status: Status, address: int, payload: bytes = b"") -> bytes:
    """A response as protocol.py describes it: SOF LEN CMD STATUS ADDR_HI ADDR_LO
    PAYLOAD CRC_HI CRC_LO, CRC-16/CCITT-FALSE over LEN..PAYLOAD."""
    body = bytes([len(payload), command, int(status), address >> 8, address & 0xFF]) + payload
    crc = binascii.crc_hqx(body, 0xFFFF)
    return bytes([SOF_BYTE]) + body + bytes([crc >> 8, crc & 0xFF])


def expected_status(register_map: RegisterMap, command: int, address: int,
                    length: int) -> Status:
    """The bank's answer to a well-formed request, from the rules in its docstring."""
    if command not in (Command.READ, Command.WRITE):
        return Status.BAD_COMMAND
    register = next((r for a, r in register_map if a == address), None)
    if register is None:
        return Status.BAD_ADDRESS
    if command == Command.WRITE:
        if register.access is Access.RO:
            return Status.READ_ONLY
        return Status.OK if length == register.size else Status.BAD_LENGTH
    if register.access is Access.WO:
        return Status.WRITE_ONLY
    return Status.OK if length == 0 else Status.BAD_LENGTH
