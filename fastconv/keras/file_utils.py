"""Keras's ``keras.utils.get_file``: a file from a URL, kept in Keras's own cache.

The cache is the one Keras uses (``$KERAS_HOME``, else ``~/.keras``, else ``/tmp/.keras`` when
the home folder is not writable), under the same names, so a file Keras downloaded is found here
and a file fastconv downloads serves Keras.  Unlike Keras, a download goes to a temporary name in
the cache folder and is renamed only once it is complete and its hash checked, and an archive is
extracted into a temporary folder renamed when done: an interrupted download or extraction leaves
no half-written cache entry.  Without network the error names the URL and the path where the file
can be put by hand.
"""
import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile

HASH_ALGORITHMS = ("auto", "sha256", "md5")
ARCHIVE_FORMATS = ("tar", "zip")
_CHUNK = 1 << 16


def keras_home():
    """Keras's cache folder: ``$KERAS_HOME`` when set, else ``~/.keras`` (``/tmp/.keras`` when the
    home folder is not writable), as Keras decides it."""
    if "KERAS_HOME" in os.environ:
        return os.environ["KERAS_HOME"]
    base = os.path.expanduser("~")
    if not os.access(base, os.W_OK):
        base = "/tmp"
    return os.path.join(base, ".keras")


def resolve_hasher(algorithm, file_hash=None):
    """A hashlib object for ``algorithm``; 'auto' means sha256 for a 64-character hash, else md5."""
    if algorithm not in HASH_ALGORITHMS:
        raise ValueError(f"get_file: hash_algorithm must be one of {HASH_ALGORITHMS}. "
                         f"Received: hash_algorithm={algorithm!r}")
    if algorithm == "sha256" or (algorithm == "auto" and file_hash is not None and len(file_hash) == 64):
        return hashlib.sha256()
    return hashlib.md5()


def hash_file(fpath, algorithm="sha256", chunk_size=_CHUNK):
    """The hex digest of a file (``algorithm`` a name or a hashlib object)."""
    hasher = resolve_hasher(algorithm) if isinstance(algorithm, str) else algorithm
    with open(fpath, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def validate_file(fpath, file_hash, algorithm="auto", chunk_size=_CHUNK):
    """Whether the file's sha256 or md5 digest is ``file_hash``."""
    return hash_file(fpath, resolve_hasher(algorithm, file_hash), chunk_size) == str(file_hash)


def _algorithm_name(algorithm, file_hash):
    return resolve_hasher(algorithm, file_hash).name


def _cache_folder(cache_dir, cache_subdir):
    base = os.path.expanduser(keras_home() if cache_dir is None else os.fspath(cache_dir))
    try:
        os.makedirs(base, exist_ok=True)  # Keras creates its home when it is imported
    except OSError:
        pass
    if not os.access(base, os.W_OK):
        base = os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")
    folder = os.path.join(base, os.fspath(cache_subdir))
    os.makedirs(folder, exist_ok=True)
    return folder


def _targets(fname, origin, datadir, extract):
    """(download path, extraction folder or None), with Keras's names."""
    provided = fname
    fname = os.fspath(fname) if fname else None
    if not fname:
        fname = os.path.basename(urllib.parse.urlsplit(origin).path)
        if not fname:
            raise ValueError(f"get_file: can't parse the file name from the origin provided: '{origin}'. "
                             "Please specify the `fname` argument.")
    elif os.sep in fname:
        raise ValueError("Paths are no longer accepted as the `fname` argument. To specify the file's parent "
                         f"directory, use the `cache_dir` argument. Received: fname={fname}")
    if not extract:
        return os.path.join(datadir, fname), None
    if provided and "." in fname:
        return os.path.join(datadir, fname), os.path.join(datadir, f"{fname[:fname.find('.')]}_extracted")
    return os.path.join(datadir, f"{fname}_archive"), os.path.join(datadir, fname)


def _offline_error(origin, target, reason):
    return OSError(f"URL fetch failure on {origin}: {reason}. Without network, download the file elsewhere and "
                   f"put it at {target} (Keras's cache, shared with fastconv; set $KERAS_HOME or pass cache_dir= "
                   "to use another folder)")


def _download(origin, target, file_hash, algorithm):
    """Stream ``origin`` into a temporary file beside ``target``, check its size and hash, then
    rename it to ``target``.  Nothing is left behind on any failure or interruption."""
    from fastconv.keras.utils import Progbar

    print(f"Downloading data from {origin}")
    fd, partial = tempfile.mkstemp(prefix=os.path.basename(target) + ".", suffix=".part",
                                   dir=os.path.dirname(target))
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(origin)
            except urllib.error.HTTPError as e:
                raise OSError(f"URL fetch failure on {origin}: {e.code} -- {e.msg}") from None
            except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
                raise _offline_error(origin, target, getattr(e, "reason", e)) from None
            with response:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                bar = Progbar(total)
                received = 0
                while True:
                    try:
                        chunk = response.read(_CHUNK)
                    except (http.client.HTTPException, OSError) as e:
                        raise _offline_error(origin, target, f"the connection broke after {received} bytes "
                                                             f"({type(e).__name__}: {e})") from None
                    if not chunk:
                        break
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(received, finalize=False)
                bar.update(received, finalize=True)
        if total is not None and received != total:
            raise OSError(f"URL fetch failure on {origin}: the download stopped after {received} of {total} "
                          f"bytes; nothing was written to {target}")
        if file_hash is not None and not validate_file(partial, file_hash, algorithm):
            raise ValueError(f"Incomplete or corrupted file detected. The {_algorithm_name(algorithm, file_hash)} "
                             f"file hash of the file downloaded from {origin} does not match the provided value "
                             f"of {file_hash}; nothing was written to {target}")
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def _inside(base, relative):
    path = os.path.realpath(os.path.join(base, relative))
    return os.path.commonpath([path, base]) == base


def _safe_members(names_and_members, base):
    """The archive members that stay inside ``base`` (Keras skips the others with a warning)."""
    for name, member, link in names_and_members:
        if _inside(base, name) and (link is None or _inside(base, os.path.join(os.path.dirname(name), link))):
            yield member
        else:
            warnings.warn(f"Skipping invalid path during archive extraction: '{name}'.", stacklevel=3)


def _extract(archive_path, folder, archive_format):
    """Extract a tar or zip archive into ``folder`` through a temporary folder beside it.
    Returns False when the file is none of ``archive_format``."""
    if archive_format is None:
        return False
    formats = list(ARCHIVE_FORMATS) if archive_format == "auto" else (
        [archive_format] if isinstance(archive_format, str) else list(archive_format))
    for fmt in formats:
        if fmt not in ARCHIVE_FORMATS:
            raise ValueError(f"get_file: archive_format must be 'auto', 'tar', 'zip', a list of these or None. "
                             f"Received: archive_format={archive_format!r}")
    for fmt in formats:
        if fmt == "tar" and tarfile.is_tarfile(archive_path):
            opener = tarfile.open
        elif fmt == "zip" and zipfile.is_zipfile(archive_path):
            opener = zipfile.ZipFile
        else:
            continue
        staging = tempfile.mkdtemp(prefix=os.path.basename(folder) + ".", suffix=".part",
                                   dir=os.path.dirname(folder))
        try:
            base = os.path.realpath(staging)
            with opener(archive_path) as archive:
                if fmt == "tar":
                    members = ((m.name, m, m.linkname if (m.issym() or m.islnk()) else None) for m in archive)
                    archive.extractall(staging, members=_safe_members(members, base), filter="data")
                else:
                    members = ((m.filename, m, None) for m in archive.infolist())
                    archive.extractall(staging, members=list(_safe_members(members, base)))
            if os.path.isdir(folder):
                shutil.rmtree(folder)
            os.replace(staging, folder)
        finally:
            if os.path.isdir(staging):
                shutil.rmtree(staging)
        return True
    return False


def get_file(fname=None, origin=None, untar=False, md5_hash=None, file_hash=None, cache_subdir="datasets",
             hash_algorithm="auto", extract=False, archive_format="auto", cache_dir=None, force_download=False):
    """Download a file from ``origin`` unless it is already in the cache; return its path.

    Keras's arguments and cache layout: the file goes to ``{cache_dir}/{cache_subdir}/{fname}``
    (``cache_dir`` default Keras's home, ``~/.keras``; ``fname`` default the last part of the
    URL; an absolute ``cache_subdir`` is used as it is).  ``file_hash`` (sha256, or md5, picked
    by its length when ``hash_algorithm='auto'``) is checked on a cached file, which is
    downloaded again when it does not match, and on a download, which is refused when it does
    not.  ``extract=True`` extracts a tar or zip archive (``archive_format``) and returns the
    folder: for ``fname='name'`` the archive is kept as ``name_archive`` and extracted into
    ``name/``; for ``fname='name.tar.gz'`` into ``name_extracted/``.  ``untar`` and
    ``md5_hash`` are Keras's deprecated spellings of ``extract`` and ``file_hash``.
    """
    if origin is None:
        raise ValueError('Please specify the "origin" argument (URL of the file to download).')
    if md5_hash is not None and file_hash is None:
        file_hash, hash_algorithm = md5_hash, "md5"
    resolve_hasher(hash_algorithm, file_hash)  # refuse an unknown algorithm before any download
    datadir = _cache_folder(cache_dir, cache_subdir)
    download_target, extraction_dir = _targets(fname, origin, datadir, extract or untar)

    download = force_download or not os.path.exists(download_target)
    if not download and file_hash is not None and not validate_file(download_target, file_hash, hash_algorithm):
        print(f"A local file was found, but it seems to be incomplete or outdated because the "
              f"{_algorithm_name(hash_algorithm, file_hash)} file hash does not match the original value of "
              f"{file_hash} so we will re-download the data.")
        download = True
    if download:
        _download(origin, download_target, file_hash, hash_algorithm)

    if extraction_dir is None:
        return download_target
    # Keras extracts at every call; an extraction made here is complete once its folder exists
    # (it is renamed into place), so it is reused unless the archive is new.
    if download or not os.path.isdir(extraction_dir):
        if not _extract(download_target, extraction_dir, "tar" if untar else archive_format):
            warnings.warn("Could not extract archive.", stacklevel=2)
    return extraction_dir
