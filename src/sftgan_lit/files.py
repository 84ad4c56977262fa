"""Atomic file writes: a reader polling for a file (``checkpoint=latest``, a resumed run) never sees half of it."""

from __future__ import annotations

import glob
import os
import re
import tempfile
from pathlib import Path


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files an ``AtomicFile`` for ``path`` left behind when its process was killed
    (``.NAME.<mkstemp's 8 characters>.tmp`` beside it: this package's own names only, nothing else);
    returns those removed."""
    path = Path(path)
    own = re.compile(rf"^\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp$")
    removed = []
    if path.parent.is_dir():
        for p in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
            if own.match(p.name) and p.is_file():
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


class AtomicFile:
    """A file written through a temporary file in the same folder and renamed into place on ``commit()``
    (or at the end of a ``with`` block that raised nothing; an exception removes the temporary file).

    It gets the permissions a plain ``open()`` would give it (``mkstemp`` creates 0600); an ``OSError``
    (e.g. a full disk) names the file that could not be written."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o666 & ~_umask())
        except OSError:
            os.close(fd)
            Path(self.tmp).unlink(missing_ok=True)
            raise
        self.file = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        try:
            self.file.write(data)
        except OSError as err:
            self.abort()
            raise self._named(err) from err
        except BaseException:
            self.abort()
            raise

    def commit(self) -> None:
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            os.replace(self.tmp, self.path)
        except OSError as err:
            self.abort()
            raise self._named(err) from err
        except BaseException:  # interrupted (Ctrl-C, a signal): no temporary file is left behind
            self.abort()
            raise

    def abort(self) -> None:
        if not self.file.closed:
            self.file.close()
        Path(self.tmp).unlink(missing_ok=True)

    def _named(self, err: OSError) -> OSError:
        return OSError(err.errno, f"could not write {self.path}: {err.strerror or err}")

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    with AtomicFile(path) as f:
        f.write(data)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
