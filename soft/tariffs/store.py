"""State that must survive a restart: a top-up code is spent, and an update's
version counted, only once its record is on disk (:mod:`..durable`): a crash
leaves the old state or the new one, never a torn file.
"""

import json
from pathlib import Path
from typing import Any

from ..durable import write_durably

__all__ = ["JsonStore"]


class JsonStore:
    """One JSON document in a file, replaced whole and atomically on each save."""

    def __init__(self, path: "str | Path"):
        self.path = Path(path)

    def load(self, default: Any) -> Any:
        """The saved document, or ``default`` if none was ever saved."""
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return default

    def save(self, document: Any) -> None:
        """Replace the document: durable when this returns."""
        # Key order kept: a tariff's rates are in order.
        write_durably(self.path, json.dumps(document, indent=1).encode())
