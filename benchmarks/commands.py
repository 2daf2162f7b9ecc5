"""Signed-command throughput of the control module on one core: what each check
costs and how many commands per second it verifies end to end.

    python benchmarks/commands.py                      # 2,000 commands per row (200 on disk), batches of 32
    python benchmarks/commands.py --count 5000 --state /var/lib/refmeter

A row's commands are signed beforehand (signing is the head-end's cost, not the
meter's). "End to end" is :meth:`ControlModule.handle`: parse, ECDSA-P256
verify, access check, AES-CMAC (critical commands), counter check, the counter
written durably (temporary file, fsync, rename, fsync of the directory) and
dispatch to a handler that does nothing; with ``--batch N``, also
:meth:`ControlModule.handle_batch` on N commands at a time, whose counters go to
disk in one write (group commit). The durable write is measured on the
filesystem of ``--state`` (default: a temporary directory under the current one,
so a disk) and, when the machine has one, on a RAM filesystem (/dev/shm), which
shows what the checks cost without the disk. Figures go in docs/performance.md.
"""

import argparse
import datetime
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from refmeter.gateware.meter import DEMO_METER_ID
from refmeter.soft.pki.access import MessageCode
from refmeter.soft.pki.agreement import BROKER_MAC_PURPOSE, derive_key
from refmeter.soft.pki.anchors import TrustAnchors
from refmeter.soft.pki.control import ANCHORS_FILE, ControlModule
from refmeter.soft.pki.counters import OriginatorCounters
from refmeter.soft.pki.demo import PARTY_IDENTITIES, DemoPki
from refmeter.soft.pki.message import SignedCommand
from refmeter.soft.pki.roles import Role, Usage

from run import _table

NOW = datetime.datetime.now(datetime.timezone.utc)


def _per_second(operation: Callable[[int], object], count: int) -> float:
    started = time.perf_counter()
    for index in range(count):
        operation(index)
    return count / (time.perf_counter() - started)


def _broker_mac_key(pki: DemoPki) -> bytes:
    """The broker's side of its MAC key with the meter."""
    meter = pki.parties[Role.METER, Usage.KEY_AGREEMENT].info
    return derive_key(pki.parties[Role.BROKER, Usage.KEY_AGREEMENT].key, meter.public_key,
                      purpose=BROKER_MAC_PURPOSE, remote_identity=PARTY_IDENTITIES[Role.BROKER],
                      meter_identity=DEMO_METER_ID)


def _commands(pki: DemoPki, code: MessageCode, count: int, critical: bool) -> list[bytes]:
    mac_key = _broker_mac_key(pki)
    signed = []
    for counter in range(1, count + 1):
        command = SignedCommand.sign(pki.parties[Role.SUPPLIER, Usage.SIGNING].key, code=code,
                                     originator=PARTY_IDENTITIES[Role.SUPPLIER],
                                     recipient=DEMO_METER_ID, counter=counter)
        signed.append((command.with_broker_mac(mac_key) if critical else command).to_bytes())
    return signed


def _control(pki: DemoPki, state: Path) -> ControlModule:
    state.mkdir()
    TrustAnchors.commission(state / ANCHORS_FILE, pki.anchors(), at=NOW)
    handlers = {code: lambda command, role: b"" for code in MessageCode}
    return ControlModule(state, identity=DEMO_METER_ID, handlers=handlers,
                         key_agreement_key=pki.parties[Role.METER, Usage.KEY_AGREEMENT].key)


def benchmark(count: int, disk_count: int, state_root: Path, batch: int) -> str:
    pki = DemoPki.generate(DEMO_METER_ID, at=NOW - datetime.timedelta(days=1))
    plain = _commands(pki, MessageCode.READ_ENERGY, count, critical=False)
    critical = _commands(pki, MessageCode.DISCONNECT_SUPPLY, count, critical=True)
    supplier = pki.parties[Role.SUPPLIER, Usage.SIGNING].info.public_key
    parsed = [SignedCommand.parse(data) for data in critical]
    places = [("disk", state_root, disk_count)] + (
        [("RAM (/dev/shm)", Path("/dev/shm"), count)] if Path("/dev/shm").is_dir() else [])
    rows = [("step", "filesystem", "per second", "µs each")]

    def row(step: str, where: str, rate: float) -> None:
        rows.append((step, where, f"{rate:,.0f}", f"{1e6 / rate:,.1f}"))

    mac_key = _broker_mac_key(pki)
    row("ECDSA P-256 verify", "-", _per_second(lambda i: parsed[i].verify_signature(supplier), count))
    row("AES-CMAC verify", "-", _per_second(lambda i: parsed[i].verify_broker_mac(mac_key), count))
    row("parse", "-", _per_second(lambda i: SignedCommand.parse(critical[i]), count))
    for where, root, commands_here in places:
        with tempfile.TemporaryDirectory(dir=root) as scratch:
            counters = OriginatorCounters(Path(scratch) / "counters.json")
            row("durable counter write", where, _per_second(
                lambda i: counters.advance(1, i + 1), commands_here))
            rates = []
            for name, commands in (("plain", plain), ("critical", critical)):
                control = _control(pki, Path(scratch) / name)
                rates.append(_per_second(lambda i: control.handle(commands[i]), commands_here))
            row("end to end, READ_ENERGY", where, rates[0])
            row("end to end, DISCONNECT (+ broker MAC)", where, rates[1])
            control = _control(pki, Path(scratch) / "batched")
            row(f"end to end, DISCONNECT, batches of {batch}", where, batch * _per_second(
                lambda i: control.handle_batch(critical[i * batch:(i + 1) * batch]),
                count // batch))
    return (f"Signed commands through the control module, {count:,} per row ({disk_count:,} "
            f"on disk), one core (state under {state_root}):\n" + _table(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="commands per row (default 2000)")
    parser.add_argument("--disk-count", type=int, default=200,
                        help="commands per row with the state on disk (default 200: each "
                             "waits for the disk)")
    parser.add_argument("--state", type=Path, default=Path.cwd(),
                        help="where the durable state goes (default: the current directory)")
    parser.add_argument("--batch", type=int, default=32,
                        help="commands per handle_batch call in the group-commit row (default 32)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})   # one core, as the goal says
    print(benchmark(args.count, min(args.disk_count, args.count), args.state, args.batch))


if __name__ == "__main__":
    main()
