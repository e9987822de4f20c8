"""Atomic file writes: nothing a run has written is ever left half-written by a crash."""
import contextlib
import os


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yields a temporary path beside `path` to write to; on success it is renamed onto `path`.

    The rename is atomic on POSIX filesystems, so readers see either the old file or the new one.
    The temporary file is removed if the block fails. `suffix` is appended to the temporary name for
    writers that insist on an extension (np.savez adds ".npz" otherwise).
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp{os.getpid()}{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_text(path, text):
    """Writes `text` to `path` atomically."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(text)
