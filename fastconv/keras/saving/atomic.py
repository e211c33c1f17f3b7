"""Writing a file so that a crash never leaves it half written.

The content goes to a temporary file in the same folder (same file system, so that the rename
is atomic), which is flushed and fsync'ed, then renamed over the target; the folder is fsync'ed
too so that the rename itself survives a power cut.  A process killed at any moment leaves
either the old file or the new one, never a mix, and at worst a stray ``.tmp`` file.
"""
import contextlib
import os
import secrets


def check_overwrite(filepath, overwrite):
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"{filepath} exists and overwrite=False")


@contextlib.contextmanager
def atomic_write(filepath):
    """``with atomic_write(path) as f:`` gives a binary file object; ``path`` is replaced only
    when the block ends without an exception."""
    filepath = os.fspath(filepath)
    folder = os.path.dirname(os.path.abspath(filepath))
    tmp_path = os.path.join(folder, f".{os.path.basename(filepath)}.{secrets.token_hex(6)}.tmp")
    # Created as open() creates files (mode 0o666 less the umask), and never over an existing one.
    fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, filepath)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_path)
        raise
    _fsync_folder(folder)


def _fsync_folder(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # folders cannot be opened on some systems (Windows): the rename is all there is
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
