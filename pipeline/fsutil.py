"""Atomic writes: nothing half-written is ever visible under its final name."""

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_dir(target):
    """Yield a temporary directory beside `target`; on success it replaces `target` by rename.

    Leftovers of a killed writer (hidden `.name.tmp-*` / `.name.old-*`) are removed first: the
    run directory's lock guarantees no other writer is using them.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in [*target.parent.glob(f".{target.name}.tmp-*"),
                  *target.parent.glob(f".{target.name}.old-*")]:
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    plain_mode(tmp, 0o777)
    try:
        yield tmp
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.old-{os.getpid()}"
            os.replace(target, old)
        os.replace(tmp, target)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_text(path, text: str):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-")
    plain_mode(tmp, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp) if os.path.exists(tmp) else None
        raise


def plain_mode(path, full: int):
    """The mode a plain open()/mkdir() would give under the process's umask: mkstemp and mkdtemp
    make owner-only files, and teammates on a shared machine must be able to read the outputs."""
    os.chmod(path, full & ~_umask())


def _umask() -> int:
    """The process's umask, read without setting it (os.umask can only set it, and a moment at 0
    would give any file another thread creates meanwhile a world-writable mode)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    umask = os.umask(0o077)  # no /proc: set it briefly to the safest value, then restore it
    os.umask(umask)
    return umask

