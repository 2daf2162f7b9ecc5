"""Files that survive a power cut whole: the new content or the old, never a mix.

Counters that must never go back (command counters, spent top-up codes, trust
anchors, firmware slots) are written here before the action they protect is
answered.
"""

import os
import tempfile
from pathlib import Path

__all__ = ["write_durably"]


def write_durably(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``, readable by the owner only: write a temporary
    file beside it, fsync it, rename it over ``path`` (atomic on POSIX), then fsync
    the directory so that the rename itself is on disk before this returns."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view):]
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
