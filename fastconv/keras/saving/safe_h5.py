"""Reading HDF5 files that may come from anyone, through h5py.

Only hard links are followed (a soft or external link could point into another file), datasets
stored in other files or assembled from others (external, virtual) are refused, and a dataset's
dtype and shape are checked against what the model expects before a byte of it is read, so
that a file cannot make the loader allocate more than the model's own weights.  Attributes are
bounded in size before they are read.  Every failure is a ValueError naming the file and the
HDF5 path.

h5py is imported here only, when a file is read or written: ``import fastconv.keras`` needs
NumPy alone.
"""
import io

import numpy as np

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
MAX_ATTRIBUTE_BYTES = 64 << 20
# HDF5's filter ids for deflate (gzip), shuffle and fletcher32, and h5py's built-in lzf.
_LOSSLESS_FILTERS = (1, 2, 3, 32000)


def h5py():
    try:
        import h5py as module
    except ImportError:
        raise ImportError("Reading and writing Keras files (.keras, .weights.h5, .h5) needs h5py: "
                          "pip install h5py") from None
    return module


def is_hdf5(filepath):
    with open(filepath, "rb") as f:
        return f.read(8) == HDF5_MAGIC


class ShapeMismatchError(ValueError):
    """A dataset of another shape than the model's weight (``skip_mismatch`` skips those)."""


class SafeH5:
    """An HDF5 file (a path or bytes) open for reading; ``where`` names it in the errors."""

    def __init__(self, source, where):
        self.where = where
        module = h5py()
        self._errors = (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError, AttributeError,
                        UnicodeDecodeError, OverflowError)
        try:
            self.file = module.File(io.BytesIO(source) if isinstance(source, bytes) else source, "r")
        except self._errors as exc:
            raise ValueError(f"{where}: not a readable HDF5 file ({type(exc).__name__}: {exc})") from None

    def error(self, path, message):
        return ValueError(f"{self.where}: {path or '/'}: {message}")

    def _child(self, group, name, path):
        module = h5py()
        try:
            link = group.get(name, getlink=True)
        except self._errors as exc:
            raise self.error(path, f"cannot be read ({type(exc).__name__}: {exc})") from None
        if link is None:
            return None
        if not isinstance(link, module.HardLink):
            raise self.error(path, f"is a {type(link).__name__}; only plain groups and datasets are read")
        try:
            return group[name]
        except self._errors as exc:
            raise self.error(path, f"cannot be read ({type(exc).__name__}: {exc})") from None

    def group(self, path, required=True):
        """The group at ``path`` ("a/b/c"), None when absent and not ``required``."""
        module = h5py()
        node = self.file
        walked = ""
        for part in [p for p in path.split("/") if p]:
            walked = f"{walked}/{part}" if walked else part
            if not isinstance(node, module.Group):
                raise self.error(walked, "is a dataset where a group was expected")
            node = self._child(node, part, walked)
            if node is None:
                if required:
                    raise self.error(walked, "is missing")
                return None
        if not isinstance(node, module.Group):
            raise self.error(path, "is a dataset where a group was expected")
        return node

    def keys(self, group, path):
        try:
            return list(group.keys())
        except self._errors as exc:
            raise self.error(path, f"cannot be listed ({type(exc).__name__}: {exc})") from None

    def has(self, group, name):
        try:
            return name in group
        except self._errors:
            return False

    def dataset(self, group, name, path, shape, kinds="f"):
        """The array ``group[name]`` after checking that it is a float (``kinds``) array of
        ``shape`` (None: any shape, for scalars checked by the caller)."""
        module = h5py()
        node = self._child(group, name, path)
        if node is None:
            raise self.error(path, "is missing")
        if not isinstance(node, module.Dataset):
            raise self.error(path, "is a group where a dataset was expected")
        try:
            external, virtual, dtype, found = node.external, node.is_virtual, node.dtype, tuple(node.shape or ())
        except self._errors as exc:
            raise self.error(path, f"cannot be read ({type(exc).__name__}: {exc})") from None
        if external or virtual:
            raise self.error(path, "is stored outside the file (external or virtual dataset); refused")
        try:
            plist = node.id.get_create_plist()
            filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
        except self._errors as exc:
            raise self.error(path, f"cannot be read ({type(exc).__name__}: {exc})") from None
        unknown = [f for f in filters if f not in _LOSSLESS_FILTERS]
        if unknown:
            # Other filters are lossy (scale-offset, n-bit) or plugins that HDF5 would load from disk.
            raise self.error(path, f"is stored through HDF5 filter(s) {unknown}; only deflate, shuffle, fletcher32 "
                                   "and lzf are read")
        if dtype.kind not in kinds or dtype.fields is not None or dtype.subdtype is not None:
            expected = {"f": "a float array", "iu": "an integer array"}.get(kinds, "an array of real numbers")
            raise self.error(path, f"holds dtype {dtype}; {expected} is expected")
        if shape is not None and found != tuple(shape):
            raise ShapeMismatchError(f"{self.where}: {path}: has shape {found}; the model expects {tuple(shape)}")
        try:
            value = np.asarray(node[()])
        except self._errors as exc:
            raise self.error(path, f"cannot be read ({type(exc).__name__}: {exc})") from None
        if value.shape != found or value.dtype.kind not in kinds:
            raise self.error(path, f"read as {value.dtype} {value.shape}, not as declared")
        if value.dtype.kind in "iu" and value.size and "f" in kinds:
            # Integers for a float weight: only where float32 holds them exactly.
            largest = int(np.abs(value.astype(np.float64)).max())
            if largest > 2 ** 24:
                raise self.error(path, f"holds integers up to {largest}; a float weight takes integers up to 2**24 "
                                       "(exact in float32)")
        return value

    def attribute(self, node, name, path, required=False):
        """An attribute, bounded in size before it is read; strings are decoded."""
        try:
            if name not in node.attrs:
                if required:
                    raise self.error(path, f"has no attribute {name!r}")
                return None
            attribute = node.attrs.get_id(name)
            try:
                size = attribute.get_storage_size()
            except RuntimeError:   # HDF5 cannot tell the size of an empty attribute
                size = int(np.prod(attribute.shape or (), dtype=np.int64)) * attribute.dtype.itemsize
            if size > MAX_ATTRIBUTE_BYTES:
                raise self.error(path, f"attribute {name!r} takes {size} bytes; at most {MAX_ATTRIBUTE_BYTES} "
                                       "are read")
            return _decode(node.attrs[name])
        except self._errors as exc:
            if isinstance(exc, ValueError) and str(exc).startswith(self.where):
                raise
            raise self.error(path, f"attribute {name!r} cannot be read ({type(exc).__name__}: {exc})") from None

    def string_list(self, node, name, path):
        """A list-of-strings attribute (``layer_names``, ``weight_names``), also when Keras split
        it into ``name0``, ``name1``... because it was too large for one attribute."""
        value = self.attribute(node, name, path)
        if value is None:
            value, chunk = [], 0
            while True:
                part = self.attribute(node, f"{name}{chunk}", path)
                if part is None:
                    break
                value.extend(part if isinstance(part, list) else [part])
                chunk += 1
                if chunk > 10_000:
                    raise self.error(path, f"attribute {name!r} is split into too many chunks")
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(path, f"attribute {name!r} must be a list of strings")
        return value

    def close(self):
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def kinds_for(variable):
    """The dtype kinds a file may hold for ``variable``: real numbers (Keras stores some weights,
    a Normalization's count, as integers), never booleans, complex numbers, strings or objects."""
    return "fiu"


def _decode(value):
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        if value.size == 0:
            return []   # an empty list, which h5py stores as an empty float array
        if value.dtype.kind in "SUO":
            return [_decode(v) for v in value.tolist()]
        return value
    if isinstance(value, np.generic):
        return value.item()
    return value
