"""A/B firmware slots with fallback: which image the FPGA boots, as a small state
machine, and the store that keeps the slots and that state durably.

The gateware boot image, ``refmeter.gateware.boot.BootSelector``, implements the
same table and is tested against this model. The model is of the iCE40's warm boot (``SB_WARMBOOT``: image 0 in the
configuration flash is a small golden boot image that picks image 1 or 2 with
S1 S0 and pulses BOOT) and of the ECP5's multiboot (a golden image that jumps to
a primary or falls back to itself): the boot image reads :class:`BootRecord` and
picks the slot :func:`boot` says:

======================  ==============================  ===========================
record                  boot                            afterwards
======================  ==============================  ===========================
no trial                the active slot                 unchanged
trial, not yet tried    the trial slot                  trial marked tried
trial, already tried    the active slot (fallback:      trial dropped
                        the trial never confirmed)
======================  ==============================  ===========================

:func:`activate` sets a verified image in the other slot as the trial; the running
trial's self-test calls :func:`confirm` (it becomes the active slot, the previous
one stays as fallback) or :func:`reject`. A trial that hangs or resets before
confirming is rejected by the next boot. The record is written before every boot,
so a power cut at any point leaves a bootable, verified slot selected.
"""

import enum
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from .certificates import CertificateInfo
from ..durable import write_durably
from .errors import Reason, Refused
from .firmware import FirmwareImage, verify_image

__all__ = ["Slot", "BootRecord", "activate", "boot", "confirm", "reject", "FirmwareSlots",
           "Activation"]


class Slot(enum.IntEnum):
    """The warm-boot image number (S1 S0) of each slot; image 0 is the boot image."""

    A = 1
    B = 2

    @property
    def other(self) -> "Slot":
        return Slot.B if self is Slot.A else Slot.A


@dataclass(frozen=True)
class BootRecord:
    active: Slot               #: the last confirmed image
    trial: Slot | None = None  #: a verified image to try once
    tried: bool = False        #: the trial has been booted and has not confirmed

    def __post_init__(self) -> None:
        if self.trial is self.active or (self.tried and self.trial is None):
            raise ValueError(f"not a boot record: {self}")


def activate(record: BootRecord) -> BootRecord:
    """Make the other slot (holding a verified image) the trial."""
    if record.trial is not None:
        raise ValueError(f"slot {record.trial.name} is already on trial")
    return replace(record, trial=record.active.other, tried=False)


def boot(record: BootRecord) -> tuple[Slot, BootRecord]:
    """The slot to boot now, and the record to write first."""
    if record.trial is None:
        return record.active, record
    if not record.tried:
        return record.trial, replace(record, tried=True)
    return record.active, BootRecord(record.active)


def confirm(record: BootRecord) -> BootRecord:
    """The trial passed its self-test: it becomes the active slot."""
    if record.trial is None or not record.tried:
        raise ValueError("no trial is running to confirm")
    return BootRecord(record.trial)


def reject(record: BootRecord) -> BootRecord:
    """The trial failed its self-test: back to the active slot."""
    return BootRecord(record.active)


@dataclass(frozen=True)
class Activation:
    slot: Slot          #: the slot running after activation
    confirmed: bool     #: whether the new image passed (False: the previous one was restored)


class FirmwareSlots:
    """Two slots of one image kind in a directory: ``slot-a.img``, ``slot-b.img``,
    and ``boot.json`` (the record and each slot's verified version)."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            state = json.loads((self.directory / "boot.json").read_text())
            self.record = BootRecord(Slot[state["active"]],
                                     Slot[state["trial"]] if state["trial"] else None,
                                     bool(state["tried"]))
            self.versions = {Slot[name]: int(version) for name, version in state["versions"].items()}
        except FileNotFoundError:
            self.record, self.versions = BootRecord(Slot.A), {}
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{self.directory / 'boot.json'} is damaged: {error}") from None

    def image_path(self, slot: Slot) -> Path:
        return self.directory / f"slot-{slot.name.lower()}.img"

    def _save(self, record: BootRecord) -> None:
        state = asdict(record) | {"active": record.active.name,
                                  "trial": record.trial.name if record.trial else None,
                                  "versions": {slot.name: v for slot, v in self.versions.items()}}
        write_durably(self.directory / "boot.json", json.dumps(state).encode())
        self.record = record

    def boot(self) -> Slot:
        """What the boot image does at power-up or reset."""
        slot, record = boot(self.record)
        self._save(record)
        return slot

    def activate(self, data: bytes, signer: CertificateInfo,
                 self_test: Callable[[Path], bool]) -> Activation:
        """Verify the signed image ``data``, write it into the inactive slot, boot it
        and keep it only if ``self_test`` (given the slot's image file) passes."""
        image: FirmwareImage = verify_image(data, signer)
        running = self.versions.get(self.record.active)
        if running is not None and image.version <= running:
            raise Refused(Reason.ROLLBACK, f"version {image.version} is not above the running "
                                           f"version {running}")
        target = self.record.active.other
        write_durably(self.image_path(target), image.body)
        self.versions[target] = image.version
        self._save(activate(self.record))
        slot = self.boot()
        if self_test(self.image_path(slot)):
            self._save(confirm(self.record))
            return Activation(slot, True)
        self._save(reject(self.record))
        return Activation(self.boot(), False)
