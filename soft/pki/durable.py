"""Files that survive a power cut whole: the new content or the old, never a mix."""

import os
from pathlib import Path

__all__ = ["write_durably"]


def write_durably(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``, readable by the owner only: write a temporary
    file beside it, fsync it, rename it over ``path`` (atomic on POSIX), then fsync
    the directory so that the rename itself is on disk before this returns."""
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view):]
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
