"""The boot selector gateware in Amaranth's simulator, against the slot model of
refmeter.soft.pki.slots for every valid record, and the specified safe reading of
every invalid one."""

import itertools

from refmeter.gateware.boot import NO_TRIAL, SLOT_A, SLOT_B, BootSelector
from refmeter.soft.pki.slots import BootRecord, Slot, boot

from gateware_helpers import run_simulation


def _run(active: int, trial: int, tried: int, written_after: int = 3) -> dict:
    dut = BootSelector()
    seen = {}

    async def bench(ctx):
        ctx.set(dut.active, active)
        ctx.set(dut.trial, trial)
        ctx.set(dut.tried, tried)
        assert not ctx.get(dut.write) and not ctx.get(dut.boot)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for _ in range(written_after):   # the flash takes its time; no boot meanwhile
            assert ctx.get(dut.write) and not ctx.get(dut.boot)
            await ctx.tick()
        seen["record"] = (ctx.get(dut.next_active), ctx.get(dut.next_trial), ctx.get(dut.next_tried))
        ctx.set(dut.written, 1)
        await ctx.tick()
        ctx.set(dut.written, 0)
        for _ in range(3):   # and the boot stays asserted, with its image
            assert ctx.get(dut.boot) and not ctx.get(dut.write)
            await ctx.tick()
        seen["image"] = ctx.get(dut.image)

    run_simulation(dut, bench)
    return seen


def _encode(record: BootRecord) -> tuple[int, int, int]:
    return int(record.active), int(record.trial or NO_TRIAL), int(record.tried)


def test_every_valid_record_boots_as_the_model_says():
    for active, (trial, tried) in itertools.product(Slot, [(None, False), ("other", False),
                                                           ("other", True)]):
        record = BootRecord(active, active.other if trial else None, tried)
        slot, after = boot(record)
        seen = _run(*_encode(record))
        assert seen == {"image": slot, "record": _encode(after)}, record


def test_invalid_records_are_read_safely():
    """Active slot not 1 or 2 is slot A; a trial that is not the other slot is none, and
    so is "tried" without one."""
    for active, trial, tried in itertools.product(range(4), range(4), range(2)):
        safe_active = SLOT_B if active == SLOT_B else SLOT_A
        other = SLOT_A if safe_active == SLOT_B else SLOT_B
        if active in (SLOT_A, SLOT_B) and (trial == other or (trial == NO_TRIAL and not tried)):
            continue   # valid: the test above
        slot, after = boot(BootRecord(Slot(safe_active), Slot(other) if trial == other else None,
                                      bool(tried) and trial == other))
        assert _run(active, trial, tried, written_after=1) == \
            {"image": slot, "record": _encode(after)}
