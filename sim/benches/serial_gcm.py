"""cocotb bench: the Verilog of a :class:`~refmeter.gateware.aes.SerialAesGcm` against answers
worked out beforehand.

The engine sits in ``tests/test_serial_gcm.py``'s ``KeyedEngine`` (a key RAM of
``REFMETER_KEY_SLOTS`` keys written through ``key_write_*``, the slot taken with each
header). ``REFMETER_MESSAGES_FILE`` names a JSON list of messages, each with its key,
header fields, the bytes of its ``data`` stream and the answer `cryptography` (or a
published vector) gives: the ``output`` bytes and ``tag_ok``. Headers go back to back,
data bytes back to back regardless of headers, outputs and results are taken at once;
each message's key is written into the next slot while the message before runs.
Python wakes only on a handshake, not every cycle: most cycles are the engine working.
"""

import json
import os
from collections import deque
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, First, ReadOnly, RisingEdge, with_timeout


@cocotb.test()
async def messages(dut):
    """Every output byte and verdict is the expected one, message after message."""
    messages = json.loads(Path(os.environ["REFMETER_MESSAGES_FILE"]).read_text())
    key_slots = int(os.environ["REFMETER_KEY_SLOTS"])
    length_bits = int(os.environ["REFMETER_LENGTH_BITS"])
    stream = b"".join(bytes.fromhex(message["data"]) for message in messages)
    expected = [bytes.fromhex(message["output"]) for message in messages]

    Clock(dut.clk, 10, unit="ns", impl="gpi").start()
    dut.rst.value = 1
    for port in (dut.message__valid, dut.data__valid, dut.key_write_en):
        port.value = 0
    dut.output__ready.value = 1
    dut.result__ready.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0

    key_writes = deque()        # (RAM address, byte) still to write

    def queue_key(index: int):
        slot = index % key_slots
        key_writes.extend((16 * slot + n, byte)
                          for n, byte in enumerate(bytes.fromhex(messages[index]["key"])))

    queue_key(0)
    headed = offered = answered = given = 0

    def drive():
        if key_writes:
            dut.key_write_addr.value, dut.key_write_data.value = key_writes[0]
        dut.key_write_en.value = int(bool(key_writes))
        # A header waits until its key is written.
        offering = headed < len(messages) and not key_writes
        if offering:
            message = messages[headed]
            dut.key_slot.value = headed % key_slots
            dut.message__payload.value = (
                message["aad_bytes"] | message["payload_bytes"] << length_bits
                | message["decrypt"] << 2 * length_bits | message["verify"] << 2 * length_bits + 1)
        dut.message__valid.value = int(offering)
        if offered < len(stream):
            dut.data__payload.value = stream[offered]
        dut.data__valid.value = int(offered < len(stream))

    drive()
    handshakes = (dut.message__ready, dut.data__ready, dut.output__valid, dut.result__valid)
    await ReadOnly()
    while answered < len(messages):
        if not key_writes and not any(signal.value for signal in handshakes):
            await with_timeout(First(*(RisingEdge(signal) for signal in handshakes)),
                               1_000_000, "ns")
            await ReadOnly()
            continue
        # The transfers of this cycle, taken at the next rising edge.
        if key_writes:
            key_writes.popleft()
        elif headed < len(messages) and dut.message__ready.value:
            headed += 1
            if headed < len(messages):
                queue_key(headed)
        if offered < len(stream) and dut.data__ready.value:
            offered += 1
        if dut.output__valid.value:
            byte = int(dut.output__payload.value)
            assert given < len(expected[answered]) and byte == expected[answered][given], (
                f"message {answered}, output byte {given}: {byte:#04x}, expected "
                f"{expected[answered].hex()}")
            given += 1
        if dut.result__valid.value:
            message = messages[answered]
            assert (int(dut.result__payload.value), given) == \
                (message["tag_ok"], len(expected[answered])), (
                f"message {answered} ({message['aad_bytes']} AAD bytes, "
                f"{message['payload_bytes']} payload bytes, decrypt={message['decrypt']}, "
                f"verify={message['verify']}): tag_ok {int(dut.result__payload.value)}, "
                f"{given} output bytes")
            answered += 1
            given = 0
        await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        drive()
        await ReadOnly()
