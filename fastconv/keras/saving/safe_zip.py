"""Reading zip files that may come from anyone, with bounded memory.

``ZipFile`` itself trusts the file: it reads the whole central directory into memory, and an
entry's declared size is only checked once it has been decompressed.  Here the end-of-directory
record is read first and the number of entries and the directory's size are bounded before
``ZipFile`` sees the file; then only the entries asked for are read, each refused before reading
when its declared size is above its limit, and read in chunks so that an entry whose data
inflates beyond what it declares (a zip bomb with a lying header) is stopped at the limit.  Every
failure is a ValueError naming the file and the entry.
"""
import io
import os
import struct
import zipfile
import zlib

ZIP_MAGIC = b"PK\x03\x04"
_EOCD = b"PK\x05\x06"          # end of central directory record (22 bytes + comment)
_EOCD64_LOCATOR = b"PK\x06\x07"  # zip64 locator (20 bytes), just before the EOCD
_EOCD64 = b"PK\x06\x06"          # zip64 end of central directory record (56 bytes)
_MAX_COMMENT = 0xFFFF
_CHUNK = 1 << 20

# What a decompressor, the zip parser or a truncated file raise on broken data.
READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, KeyError,
               IndexError, struct.error, NotImplementedError, RuntimeError, OverflowError)


def is_zip(filepath):
    with open(filepath, "rb") as f:
        return f.read(4) == ZIP_MAGIC


class SafeZip:
    """A zip file opened for reading after its directory has been bounded.

    ``max_entries`` and ``max_directory_bytes`` bound what is read at opening; ``read(name,
    limit)`` returns one entry's bytes, at most ``limit`` of them.
    """

    def __init__(self, source, where, max_entries=64, max_directory_bytes=1 << 20):
        # ``source``: a path, or the bytes of a zip held in another file (``where`` names it).
        self.filepath = where
        self._file = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")
        try:
            entries, directory_bytes = self._directory_size()
        except BaseException:
            self._file.close()
            raise
        if entries > max_entries:
            self._file.close()
            raise ValueError(f"{self.filepath}: the zip file declares {entries} entries; at most {max_entries} "
                             "are accepted")
        if directory_bytes > max_directory_bytes:
            self._file.close()
            raise ValueError(f"{self.filepath}: the zip file's directory takes {directory_bytes} bytes; at most "
                             f"{max_directory_bytes} are accepted")
        try:
            self._zip = zipfile.ZipFile(self._file)
            infos = self._zip.infolist()
        except READ_ERRORS as exc:
            self._file.close()
            raise ValueError(f"{self.filepath}: not a readable zip file ({type(exc).__name__}: {exc})") from None
        names = [info.filename for info in infos]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            self.close()
            raise ValueError(f"{self.filepath}: the zip file holds several entries named {duplicates}")
        self._infos = {info.filename: info for info in infos}

    def _directory_size(self):
        """(number of entries, bytes of the central directory) from the end records."""
        f = self._file
        f.seek(0, os.SEEK_END)
        size = f.tell()
        tail_size = min(size, 22 + _MAX_COMMENT + 20)
        f.seek(size - tail_size)
        tail = f.read(tail_size)
        at = tail.rfind(_EOCD)
        if at < 0 or len(tail) - at < 22:
            raise ValueError(f"{self.filepath}: not a zip file (no end-of-directory record)")
        _, _, _, _, entries, directory_bytes, _, _ = struct.unpack("<4s4H2LH", tail[at:at + 22])
        if entries == 0xFFFF or directory_bytes == 0xFFFFFFFF:
            locator = at - 20
            if locator < 0 or tail[locator:locator + 4] != _EOCD64_LOCATOR:
                raise ValueError(f"{self.filepath}: broken zip64 file (no zip64 locator)")
            (offset,) = struct.unpack("<Q", tail[locator + 8:locator + 16])
            if offset + 56 > size:
                raise ValueError(f"{self.filepath}: broken zip64 file (record beyond the end of the file)")
            f.seek(offset)
            record = f.read(56)
            if record[:4] != _EOCD64:
                raise ValueError(f"{self.filepath}: broken zip64 file (no zip64 end record)")
            entries, directory_bytes = struct.unpack("<QQ", record[32:48])
        return entries, directory_bytes

    def names(self):
        return list(self._infos)

    def declared_size(self, name):
        return self._infos[name].file_size

    def read(self, name, limit):
        """The bytes of entry ``name``, refused when it declares or inflates to more than ``limit``."""
        info = self._infos.get(name)
        if info is None:
            raise ValueError(f"{self.filepath}: the zip file has no entry {name!r}")
        if info.file_size > limit:
            raise ValueError(f"{self.filepath}: entry {name!r} declares {info.file_size} bytes; at most {limit} are "
                             "accepted for it")
        buffer = io.BytesIO()
        try:
            with self._zip.open(info) as entry:
                while True:
                    chunk = entry.read(_CHUNK)
                    if not chunk:
                        break
                    if buffer.tell() + len(chunk) > limit:
                        raise ValueError(f"{self.filepath}: entry {name!r} inflates to more than {limit} bytes")
                    buffer.write(chunk)
        except READ_ERRORS as exc:
            raise ValueError(f"{self.filepath}: entry {name!r} cannot be read ({type(exc).__name__}: {exc})") from None
        return buffer.getvalue()

    def close(self):
        self._zip.close()
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
