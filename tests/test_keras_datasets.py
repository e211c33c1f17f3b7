"""fastconv.keras.utils.get_file and fastconv.keras.datasets: Keras's cache, hashes, archives and
arrays.  Nothing is downloaded: small files of the real formats are served by an HTTP server on
127.0.0.1 or put in a temporary cache."""
import gzip
import hashlib
import http.server
import io
import os
import pickle
import socket
import tarfile
import threading
import zipfile

import numpy as np
import pytest

from fastconv.keras import datasets
from fastconv.keras.datasets import _cifar, cifar10, cifar100, fashion_mnist, mnist
from fastconv.keras.utils import get_file


def sha256(data):
    return hashlib.sha256(data).hexdigest()


class Server:
    """Files served from memory on 127.0.0.1: ``files[name] = bytes``; ``truncate[name] = n``
    announces the full length but sends only n bytes, then closes (an interrupted download)."""

    def __init__(self):
        self.files, self.truncate, self.requests = {}, {}, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.lstrip("/")
                server.requests.append(name)
                if name not in server.files:
                    self.send_error(404, "Not Found")
                    return
                data = server.files[name]
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[:server.truncate.get(name, len(data))])
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture(autouse=True)
def keras_home(tmp_path, monkeypatch):
    """Every test's Keras cache is a temporary folder (never the real ~/.keras)."""
    home = tmp_path / "keras_home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/file.bin"


def leftovers(folder):
    return sorted(p.name for p in folder.rglob("*") if ".part" in p.name)


# -- get_file -------------------------------------------------------------------------------------

def test_get_file_downloads_into_keras_home_and_then_reads_the_cache(server, keras_home, capsys):
    server.files["data.bin"] = b"0123456789" * 1000
    path = get_file(origin=server.url + "data.bin", file_hash=sha256(server.files["data.bin"]))
    assert path == os.path.join(str(keras_home), "datasets", "data.bin")
    assert open(path, "rb").read() == server.files["data.bin"]
    assert f"Downloading data from {server.url}data.bin" in capsys.readouterr().out
    server.close()  # offline from now on: the cache answers
    assert get_file("data.bin", origin=server.url + "data.bin") == path
    assert server.requests == ["data.bin"]
    assert leftovers(keras_home) == []


def test_get_file_cache_dir_subdir_and_md5(server, tmp_path):
    data = b"abc" * 100
    server.files["x.txt"] = data
    md5 = hashlib.md5(data).hexdigest()
    path = get_file("y.txt", origin=server.url + "x.txt", file_hash=md5, cache_dir=tmp_path, cache_subdir="sub")
    assert path == os.path.join(str(tmp_path), "sub", "y.txt")
    absolute = tmp_path / "elsewhere"
    path = get_file("z.txt", origin=server.url + "x.txt", md5_hash=md5, cache_subdir=str(absolute))
    assert path == str(absolute / "z.txt") and open(path, "rb").read() == data


def test_get_file_refetches_a_cached_file_whose_hash_differs(server, tmp_path, capsys):
    server.files["f"] = b"good content"
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "f").write_bytes(b"stale")
    path = get_file("f", origin=server.url + "f", file_hash=sha256(b"good content"), cache_dir=tmp_path)
    assert open(path, "rb").read() == b"good content"
    assert "file hash does not match the original value" in capsys.readouterr().out


def test_get_file_refuses_a_download_with_the_wrong_hash_and_writes_nothing(server, tmp_path):
    server.files["f"] = b"tampered"
    with pytest.raises(ValueError, match="sha256 file hash .* does not match the provided value of 0+"):
        get_file("f", origin=server.url + "f", file_hash="0" * 64, cache_dir=tmp_path)
    assert sorted(os.listdir(tmp_path / "datasets")) == []


def test_an_interrupted_download_leaves_no_cache_entry(server, tmp_path):
    server.files["big"] = b"x" * 200_000
    server.truncate["big"] = 70_000
    with pytest.raises(OSError, match="URL fetch failure on .*big"):
        get_file("big", origin=server.url + "big", cache_dir=tmp_path)
    assert os.listdir(tmp_path / "datasets") == []


def test_offline_error_names_the_url_and_where_to_put_the_file(tmp_path):
    url = closed_port_url()
    target = os.path.join(str(tmp_path), "datasets", "file.bin")
    with pytest.raises(OSError) as info:
        get_file(origin=url, cache_dir=tmp_path)
    assert url in str(info.value) and f"put it at {target}" in str(info.value)
    assert os.listdir(tmp_path / "datasets") == []


def test_http_error_and_bad_arguments(server, tmp_path):
    with pytest.raises(OSError, match="404"):
        get_file("missing", origin=server.url + "missing", cache_dir=tmp_path)
    with pytest.raises(ValueError, match='"origin"'):
        get_file("f")
    with pytest.raises(ValueError, match="fname"):
        get_file(os.path.join("a", "b"), origin=server.url + "f", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="hash_algorithm"):
        get_file("f", origin=server.url + "f", file_hash="ab", hash_algorithm="sha1", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="Please specify the `fname`"):
        get_file(origin="http://127.0.0.1:1/", cache_dir=tmp_path)


def tar_gz(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zip_bytes(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_extract_names_as_keras_and_skips_paths_outside(server, tmp_path):
    server.files["a.tar.gz"] = tar_gz({"top/one.txt": b"1", "top/two.txt": b"2"})
    server.files["b.zip"] = zip_bytes({"inner/three.txt": b"3"})
    server.files["evil.tar.gz"] = tar_gz({"ok.txt": b"ok", "../escaped.txt": b"no"})
    folder = get_file("set", origin=server.url + "a.tar.gz", extract=True, cache_dir=tmp_path)
    assert folder == os.path.join(str(tmp_path), "datasets", "set")
    assert os.path.isfile(os.path.join(str(tmp_path), "datasets", "set_archive"))
    assert open(os.path.join(folder, "top", "two.txt")).read() == "2"
    folder = get_file("b.zip", origin=server.url + "b.zip", extract=True, cache_dir=tmp_path)
    assert folder == os.path.join(str(tmp_path), "datasets", "b_extracted")
    assert open(os.path.join(folder, "inner", "three.txt")).read() == "3"
    folder = get_file(origin=server.url + "b.zip", extract=True, cache_dir=tmp_path / "unnamed")
    assert folder == os.path.join(str(tmp_path), "unnamed", "datasets", "b.zip")
    assert os.path.isfile(folder + "_archive") and os.path.isdir(os.path.join(folder, "inner"))
    with pytest.warns(UserWarning, match="Skipping invalid path"):
        folder = get_file("evil", origin=server.url + "evil.tar.gz", untar=True, cache_dir=tmp_path)
    assert os.listdir(folder) == ["ok.txt"] and not (tmp_path / "escaped.txt").exists()
    server.files["plain"] = b"not an archive"
    with pytest.warns(UserWarning, match="Could not extract archive"):
        get_file("plain", origin=server.url + "plain", extract=True, cache_dir=tmp_path)
    assert leftovers(tmp_path) == []


def test_get_file_shares_its_cache_with_keras(tf, server, tmp_path):
    from keras.utils import get_file as keras_get_file

    server.files["k.bin"] = b"from keras"
    server.files["f.bin"] = b"from fastconv"
    server.files["arch.tar.gz"] = tar_gz({"d/x.txt": b"x"})
    keras_path = keras_get_file("k.bin", origin=server.url + "k.bin", cache_dir=tmp_path)
    ours = get_file("f.bin", origin=server.url + "f.bin", cache_dir=tmp_path, file_hash=sha256(b"from fastconv"))
    keras_folder = keras_get_file("arch", origin=server.url + "arch.tar.gz", extract=True, cache_dir=tmp_path)
    server.close()
    assert get_file("k.bin", origin=server.url + "k.bin", cache_dir=tmp_path, file_hash=sha256(b"from keras")) \
        == keras_path
    assert keras_get_file("f.bin", origin=server.url + "f.bin", cache_dir=tmp_path,
                          file_hash=sha256(b"from fastconv")) == ours
    assert get_file("arch", origin=server.url + "arch.tar.gz", extract=True, cache_dir=tmp_path) == keras_folder


# -- the datasets -----------------------------------------------------------------------------------

def test_mnist_reads_keras_file_through_the_cache(server, keras_home, monkeypatch):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
              "y_train": rng.integers(0, 10, 5, dtype=np.uint8),
              "x_test": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
              "y_test": rng.integers(0, 10, 3, dtype=np.uint8)}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    server.files["mnist.npz"] = buf.getvalue()
    monkeypatch.setattr(mnist, "ORIGIN", server.url + "mnist.npz")
    monkeypatch.setattr(mnist, "FILE_HASH", sha256(buf.getvalue()))
    (x_train, y_train), (x_test, y_test) = datasets.mnist.load_data()
    assert (keras_home / "datasets" / "mnist.npz").is_file()
    for got, key in ((x_train, "x_train"), (y_train, "y_train"), (x_test, "x_test"), (y_test, "y_test")):
        assert got.dtype == np.uint8 and np.array_equal(got, arrays[key])
    np.savez(keras_home / "datasets" / "broken.npz", x_train=arrays["x_train"])
    monkeypatch.setattr(mnist, "FILE_HASH", sha256((keras_home / "datasets" / "broken.npz").read_bytes()))
    with pytest.raises(ValueError, match=r"holds no array\(s\) \['y_train', 'x_test', 'y_test'\]"):
        mnist.load_data(path="broken.npz")


def idx_gz(array):
    magic = {1: 0x801, 3: 0x803}[array.ndim]
    header = magic.to_bytes(4, "big") + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_parses_idx_files_from_the_cache(keras_home):
    rng = np.random.default_rng(1)
    x_train, y_train = rng.integers(0, 256, (4, 28, 28)), rng.integers(0, 10, 4)
    x_test, y_test = rng.integers(0, 256, (2, 28, 28)), rng.integers(0, 10, 2)
    folder = keras_home / "datasets" / "fashion-mnist"
    folder.mkdir(parents=True)
    for name, array in zip(fashion_mnist.FILES, (y_train, x_train, y_test, x_test)):
        (folder / name).write_bytes(idx_gz(array))
    (gx_train, gy_train), (gx_test, gy_test) = datasets.fashion_mnist.load_data()
    assert gx_train.shape == (4, 28, 28) and gy_test.shape == (2,) and gx_train.dtype == gy_train.dtype == np.uint8
    assert np.array_equal(gx_train, x_train) and np.array_equal(gy_train, y_train)
    assert np.array_equal(gx_test, x_test) and np.array_equal(gy_test, y_test)
    (folder / fashion_mnist.FILES[1]).write_bytes(gzip.compress(b"\x00\x00\x08\x03" + b"\x00" * 20))
    with pytest.raises(ValueError, match="announces shape .* delete it"):
        fashion_mnist.load_data()


def cifar_batch(rng, n, label_keys):
    """A batch pickled as CIFAR's are: a dict with byte-string keys, uint8 data (n, 3072)."""
    d = {b"batch_label": b"testing batch", b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
         b"filenames": [f"img_{i}.png".encode() for i in range(n)]}
    for key in label_keys:
        d[key.encode()] = [int(v) for v in rng.integers(0, 100, n)]
    return d


def cifar_archive(top, batches):
    return tar_gz({f"{top}/{name}": pickle.dumps(d, protocol=3) for name, d in batches.items()})


@pytest.fixture
def cifar10_server(server, monkeypatch):
    rng = np.random.default_rng(2)
    batches = {f"data_batch_{i}": cifar_batch(rng, 3, ["labels"]) for i in range(1, 6)}
    batches["test_batch"] = cifar_batch(rng, 2, ["labels"])
    server.files["c10.tar.gz"] = cifar_archive("cifar-10-batches-py", batches)
    monkeypatch.setattr(cifar10, "ORIGIN", server.url + "c10.tar.gz")
    monkeypatch.setattr(cifar10, "FILE_HASH", sha256(server.files["c10.tar.gz"]))
    return batches


def expected_images(batches):
    return np.concatenate([d[b"data"] for d in batches]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def test_cifar10_arrays_as_keras(cifar10_server, keras_home):
    (x_train, y_train), (x_test, y_test) = datasets.cifar10.load_data()
    train = [cifar10_server[f"data_batch_{i}"] for i in range(1, 6)]
    assert x_train.shape == (15, 32, 32, 3) and x_test.shape == (2, 32, 32, 3)
    assert y_train.shape == (15, 1) and y_test.shape == (2, 1)
    assert x_train.dtype == x_test.dtype == y_train.dtype == y_test.dtype == np.uint8
    assert np.array_equal(x_train, expected_images(train))
    assert np.array_equal(y_train[:, 0], [v for d in train for v in d[b"labels"]])
    assert np.array_equal(x_test, expected_images([cifar10_server["test_batch"]]))
    assert (keras_home / "datasets" / "cifar-10-batches-py-target_archive").is_file()
    assert (keras_home / "datasets" / "cifar-10-batches-py-target" / "cifar-10-batches-py").is_dir()


def test_cifar100_label_modes(server, keras_home, monkeypatch):
    rng = np.random.default_rng(3)
    batches = {"train": cifar_batch(rng, 4, ["fine_labels", "coarse_labels"]),
               "test": cifar_batch(rng, 2, ["fine_labels", "coarse_labels"])}
    server.files["c100.tar.gz"] = cifar_archive("cifar-100-python", batches)
    monkeypatch.setattr(cifar100, "ORIGIN", server.url + "c100.tar.gz")
    monkeypatch.setattr(cifar100, "FILE_HASH", sha256(server.files["c100.tar.gz"]))
    (x_train, y_fine), (x_test, y_fine_test) = cifar100.load_data()
    (_, y_coarse), _ = cifar100.load_data(label_mode="coarse")
    assert server.requests == ["c100.tar.gz"]
    assert np.array_equal(x_train, expected_images([batches["train"]])) and x_test.shape == (2, 32, 32, 3)
    assert y_fine.dtype == np.int64 and y_fine.shape == (4, 1)  # as Keras: a reshaped list of ints
    assert np.array_equal(y_fine[:, 0], batches["train"][b"fine_labels"])
    assert np.array_equal(y_coarse[:, 0], batches["train"][b"coarse_labels"])
    assert np.array_equal(y_fine_test[:, 0], batches["test"][b"fine_labels"])
    with pytest.raises(ValueError, match="label_mode"):
        cifar100.load_data(label_mode="medium")


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo owned",))


@pytest.mark.parametrize("payload, refused", [
    ({b"data": Exploit()}, "posix.system|os.system|nt.system"),
    ({b"data": np.array([object()], dtype=object)}, "refusing dtype|refusing to load"),
])
def test_cifar_unpickler_refuses_code_and_objects(tmp_path, payload, refused):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(payload, protocol=3))
    with pytest.raises(ValueError, match=f"cannot read .*data_batch_1: .*({refused})"):
        _cifar.load_batch(path)


def test_cifar_batch_of_the_wrong_shape_is_refused(tmp_path):
    path = tmp_path / "b"
    path.write_bytes(pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(ValueError, match=r"uint8 array \(n, 3072\)"):
        _cifar.load_batch(path)
    path.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}))
    with pytest.raises(ValueError, match="list of 2 ints"):
        _cifar.load_batch(path)


def test_cifar_batch_reads_as_keras_load_batch(tf, tmp_path):
    from keras.src.datasets.cifar import load_batch as keras_load_batch

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(cifar_batch(np.random.default_rng(4), 5, ["labels"]), protocol=3))
    data, labels = _cifar.load_batch(path)
    k_data, k_labels = keras_load_batch(str(path))
    assert np.array_equal(data, k_data) and data.dtype == k_data.dtype and labels == k_labels


def test_cifar10_same_arrays_as_keras_from_the_same_cache(tf, cifar10_server, keras_home, monkeypatch):
    import keras
    from keras.src.datasets import cifar10 as keras_cifar10

    (x_train, y_train), (x_test, y_test) = cifar10.load_data()  # downloads into $KERAS_HOME
    # Keras's loader, pointed at the same cache (and the small archive's hash), with its batch
    # reader padding our training batches to the 10,000 images it expects.
    monkeypatch.setattr(keras_cifar10, "get_file", lambda **kw: keras.utils.get_file(
        **{**kw, "origin": cifar10.ORIGIN, "file_hash": cifar10.FILE_HASH, "cache_dir": str(keras_home)}))
    monkeypatch.setattr(keras_cifar10, "load_batch", lambda fpath: _pad_to_keras(fpath))
    (k_x_train, k_y_train), (k_x_test, k_y_test) = keras_cifar10.load_data()
    n = len(x_train) // 5
    for got, ref in ((x_test, k_x_test), (y_test, k_y_test)):
        assert got.dtype == ref.dtype and np.array_equal(got, ref)
    for i in range(5):
        assert np.array_equal(x_train[i * n:(i + 1) * n], k_x_train[i * 10000:i * 10000 + n])
        assert np.array_equal(y_train[i * n:(i + 1) * n], k_y_train[i * 10000:i * 10000 + n])
    assert y_train.dtype == k_y_train.dtype and x_train.dtype == k_x_train.dtype


def _pad_to_keras(fpath):
    """Keras's own batch reader, with the training batches padded to Keras's 10,000 images."""
    from keras.src.datasets.cifar import load_batch as keras_load_batch

    data, labels = keras_load_batch(fpath)
    if os.path.basename(fpath).startswith("data_batch"):
        padded = np.zeros((10000,) + data.shape[1:], np.uint8)
        padded[:len(data)] = data
        return padded, list(labels) + [0] * (10000 - len(labels))
    return data, labels
