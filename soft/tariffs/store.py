"""State that must survive a restart, written atomically.

A top-up code is spent, and an update's version counted, only once its record is on
disk: the new state is written to a temporary file beside the old, flushed and
fsynced, then renamed over it (an atomic replacement on POSIX), and the directory is
fsynced so the rename itself survives a power cut. A crash leaves the old state or
the new one, never a torn file.
"""

import json
import os
import tempfile
from pathlib import Path
from typing import Any

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
        text = json.dumps(document, indent=1)  # key order kept: a tariff's rates are in order
        descriptor, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(descriptor, "w") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
