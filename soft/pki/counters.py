"""Each originator's last accepted command counter, kept durably: a counter is on
disk before the command it belongs to is answered, so no restart (or power cut)
can reopen a replay."""

import json
from collections.abc import Mapping
from pathlib import Path

from ..durable import write_durably
from .errors import Reason, Refused
from .certificates import format_identity

__all__ = ["OriginatorCounters"]

_COUNTER_LIMIT = 1 << 64


class OriginatorCounters:
    """The counters in one JSON file, ``{"<identity hex>": counter}``; a missing
    file is a meter that has accepted nothing yet."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            content = json.loads(self.path.read_text())
            self._last = {int(identity, 16): int(counter) for identity, counter in content.items()}
        except FileNotFoundError:
            self._last = {}
        except (OSError, ValueError, AttributeError) as error:
            # Never start from zero on a damaged file: that would reopen every replay.
            raise ValueError(f"{self.path} is not a counter file: {error}") from None

    def last(self, originator: int) -> int:
        return self._last.get(originator, 0)

    def check(self, originator: int, counter: int, *, above: int = 0) -> None:
        """Refuse (:attr:`Reason.REPLAYED`) a counter not above the last accepted (nor
        above ``above``, a counter accepted but not yet written)."""
        last = max(self.last(originator), above)
        if not last < counter < _COUNTER_LIMIT:
            raise Refused(Reason.REPLAYED, f"counter {counter} from {format_identity(originator)} "
                                           f"is not above its last accepted, {last}")

    def advance(self, originator: int, counter: int) -> None:
        """Check ``counter`` and make it the originator's last, on disk first."""
        self.advance_all({originator: counter})

    def advance_all(self, counters: "Mapping[int, int]") -> None:
        """Check each originator's counter and make them the last, on disk first, in
        one durable write (none when there is nothing to write)."""
        if not counters:
            return
        for originator, counter in counters.items():
            self.check(originator, counter)
        updated = self._last | dict(counters)
        write_durably(self.path, json.dumps({f"{identity:016x}": value for identity, value
                                             in sorted(updated.items())}).encode())
        self._last = updated
