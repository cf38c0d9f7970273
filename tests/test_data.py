"""Tests for fastdense.data: IDX reading, dataset lookup and download, minibatches, embedded data.

Network access is confined to servers on 127.0.0.1 started by these tests.
"""

import dataclasses
import gzip
import hashlib
import http.server
import importlib.resources
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from fastdense import data

FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
SYSTEM_DIR = Path(data.SYSTEM_FASHION_MNIST_DIR)
HAVE_SYSTEM_FASHION = all((SYSTEM_DIR / f).is_file() for f in FILES)

CODES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


# --------------------------------------------------------------------------- helpers


def idx_bytes(array, code=None, ndim=None):
    """Encode array as IDX; code/ndim override the header to build corrupt files."""
    array = np.asarray(array)
    if code is None:
        code = {np.dtype(v).newbyteorder("="): k for k, v in CODES.items()}[array.dtype]
    dtype = np.dtype(CODES.get(code, ">u1"))
    shape = array.shape[: ndim if ndim is not None else array.ndim]
    header = bytes([0, 0, code, len(shape)]) + b"".join(d.to_bytes(4, "big") for d in shape)
    return header + array.astype(dtype).tobytes()


def write_idx(path, array, gz=False, **kw):
    raw = idx_bytes(array, **kw)
    Path(path).write_bytes(gzip.compress(raw, mtime=0) if gz else raw)
    return Path(path)


def make_dataset(n_train=12, n_test=6, label=None, seed=0):
    """Small MNIST-shaped dataset; a constant label makes its origin recognisable."""
    rng = np.random.default_rng(seed)
    xtr = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    xte = rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
    ytr = np.full(n_train, label, np.uint8) if label is not None else (np.arange(n_train) % 10).astype(np.uint8)
    yte = np.full(n_test, label, np.uint8) if label is not None else (np.arange(n_test) % 10).astype(np.uint8)
    return {FILES[0]: xtr, FILES[1]: ytr, FILES[2]: xte, FILES[3]: yte}


def gz_files(arrays):
    return {name: gzip.compress(idx_bytes(a), mtime=0) for name, a in arrays.items()}


def write_dataset(directory, arrays, gz=True):
    directory.mkdir(parents=True, exist_ok=True)
    for name, a in arrays.items():
        write_idx(directory / (name if gz else name[:-3]), a, gz=gz)
    return directory


def unused_port():
    # Bound then closed, so connecting to it is refused at once.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def patch_spec(monkeypatch, dataset, **changes):
    spec = dataclasses.replace(data._DATASETS[dataset], **changes)
    monkeypatch.setitem(data._DATASETS, dataset, spec)
    return spec


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No real cache, no real system copy, no reachable mirror, no proxy."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.setenv("FASTDENSE_DATA", str(tmp_path / "cache"))
    dead = f"http://127.0.0.1:{unused_port()}/"
    patch_spec(monkeypatch, "mnist", mirrors=(dead,))
    patch_spec(monkeypatch, "fashion-mnist", mirrors=(dead,), system_dirs=(str(tmp_path / "system"),))
    return tmp_path


class Server:
    """http.server on an ephemeral 127.0.0.1 port serving a dict of path -> bytes."""

    def __init__(self, routes):
        self.routes = routes
        self.requests = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                owner.requests.append(self.path)
                body = owner.routes.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05})
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server():
    srv = Server({})
    yield srv
    srv.close()


# --------------------------------------------------------------------------- read_idx


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("code", sorted(CODES), ids=[f"0x{c:02X}" for c in sorted(CODES)])
def test_idx_round_trip(tmp_path, code, gz):
    rng = np.random.default_rng(code)
    native = np.dtype(CODES[code]).newbyteorder("=")
    if native.kind == "f":
        a = rng.standard_normal((3, 4, 5)).astype(native)
    else:
        info = np.iinfo(native)
        a = rng.integers(info.min, info.max, (3, 4, 5), endpoint=True, dtype=native)
    out = data.read_idx(write_idx(tmp_path / "a.idx", a, gz=gz))
    assert out.dtype == native and out.dtype.isnative
    assert out.shape == a.shape
    np.testing.assert_array_equal(out, a)
    out[0, 0, 0] = 0  # writable


def test_idx_one_dimensional_and_empty(tmp_path):
    np.testing.assert_array_equal(data.read_idx(write_idx(tmp_path / "l", np.arange(7, dtype=np.uint8))),
                                  np.arange(7))
    assert data.read_idx(write_idx(tmp_path / "e", np.zeros((0, 28, 28), np.uint8))).shape == (0, 28, 28)


def test_idx_gzip_detected_by_content_not_name(tmp_path):
    a = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    gz_named_plain = write_idx(tmp_path / "plain.gz", a, gz=False)
    plain_named_gz = write_idx(tmp_path / "packed.idx", a, gz=True)
    np.testing.assert_array_equal(data.read_idx(gz_named_plain), a)
    np.testing.assert_array_equal(data.read_idx(plain_named_gz), a)


GOOD = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
CORRUPT = {
    "bad_magic": (b"\x01" + idx_bytes(GOOD)[1:], r"bad magic number"),
    "bad_dtype_code": (idx_bytes(GOOD, code=0x0A), r"unknown IDX type code 0x0A"),
    "truncated_payload": (idx_bytes(GOOD)[:-1], r"truncated.*\(2, 3, 4\).*24 payload bytes.*has 23 bytes"),
    "extra_bytes": (idx_bytes(GOOD) + b"\0\0\0", r"3 unexpected trailing bytes"),
    "ndim_mismatch": (idx_bytes(GOOD, ndim=2), r"2-d header declares shape \(2, 3\)"),
    "truncated_header": (idx_bytes(GOOD)[:10], r"truncated IDX header"),
    "too_short": (b"\0\0", r"shorter than the 4-byte magic"),
    "zero_ndim": (b"\0\0\x08\0", r"0 dimensions"),
}


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_idx_corrupt_raises_value_error(tmp_path, case, gz):
    raw, pattern = CORRUPT[case]
    path = tmp_path / f"{case}.idx"
    path.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(ValueError, match=pattern) as info:
        data.read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("damage", ["cut", "garbage"])
def test_idx_corrupt_gzip_stream(tmp_path, damage):
    packed = gzip.compress(idx_bytes(GOOD))
    packed = packed[: len(packed) // 2] if damage == "cut" else packed[:10] + b"\xff" * 20 + packed[30:]
    path = tmp_path / "bad.gz"
    path.write_bytes(packed)
    with pytest.raises(ValueError, match=r"bad\.gz: corrupt gzip stream"):
        data.read_idx(path)


# --------------------------------------------------------------------------- lookup order


def test_lookup_order_given_then_cache_then_system(isolated):
    given = write_dataset(isolated / "given", make_dataset(label=1))
    write_dataset(isolated / "cache" / "fashion-mnist", make_dataset(label=2))
    system = write_dataset(isolated / "system", make_dataset(label=3))

    (_, y), _ = data.load_fashion_mnist(given)
    assert set(y.tolist()) == {1}
    (_, y), _ = data.load_fashion_mnist()
    assert set(y.tolist()) == {2}
    (_, y), _ = data.load_fashion_mnist(isolated / "nowhere")  # incomplete given dir falls through
    assert set(y.tolist()) == {2}
    for f in (isolated / "cache" / "fashion-mnist").iterdir():
        f.unlink()
    (_, y), _ = data.load_fashion_mnist(download=False)
    assert set(y.tolist()) == {3}
    assert data.load_fashion_mnist(system)[0][1].tolist() == y.tolist()


def test_partial_given_dir_is_skipped(isolated):
    arrays = make_dataset(label=1)
    given = write_dataset(isolated / "given", {k: v for k, v in arrays.items() if k != FILES[3]})
    write_dataset(isolated / "cache" / "mnist", make_dataset(label=2))
    (_, y), _ = data.load_mnist(given)
    assert set(y.tolist()) == {2}


def test_load_format_and_uncompressed_files(isolated):
    arrays = make_dataset()
    d = write_dataset(isolated / "plain", arrays, gz=False)
    (xtr, ytr), (xte, yte) = data.load_mnist(d)
    assert xtr.shape == (12, 784) and xte.shape == (6, 784)
    assert xtr.dtype == np.float32 and ytr.dtype == np.int64 and yte.dtype == np.int64
    assert xtr.flags.c_contiguous
    np.testing.assert_array_equal(xtr, arrays[FILES[0]].reshape(12, 784).astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(ytr, arrays[FILES[1]])
    (x3, _), _ = data.load_mnist(d, flatten=False)
    assert x3.shape == (12, 28, 28)


def test_corrupt_local_file_raises_instead_of_falling_through(isolated):
    given = write_dataset(isolated / "given", make_dataset())
    write_dataset(isolated / "cache" / "mnist", make_dataset())
    (given / FILES[2]).write_bytes(b"\0\0\x08\x03" + b"\0" * 8)
    with pytest.raises(ValueError, match="t10k-images"):
        data.load_mnist(given)


def test_mismatched_images_and_labels(isolated):
    arrays = make_dataset()
    arrays[FILES[1]] = arrays[FILES[1]][:-1]
    with pytest.raises(ValueError, match="12 images but labels of shape"):
        data.load_mnist(write_dataset(isolated / "d", arrays))


def test_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("FASTDENSE_DATA", str(tmp_path / "root"))
    assert data.cache_dir("fashion-mnist") == tmp_path / "root" / "fashion-mnist"
    monkeypatch.delenv("FASTDENSE_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.cache_dir("mnist") == tmp_path / "xdg" / "fastdense" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.cache_dir("mnist") == tmp_path / "home" / ".cache" / "fastdense" / "mnist"


# --------------------------------------------------------------------------- offline errors


def test_offline_error_says_how_to_get_fashion_mnist(isolated):
    with pytest.raises(data.DataNotFoundError) as info:
        data.load_fashion_mnist(isolated / "given")
    msg = str(info.value)
    assert "Fashion-MNIST not found" in msg
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "FASTDENSE_DATA" in msg and 'load_dataset("embedded")' in msg
    assert str(isolated / "given") in msg and str(isolated / "cache" / "fashion-mnist") in msg
    assert str(isolated / "system") in msg
    assert data._DATASETS["fashion-mnist"].mirrors[0] + FILES[0] in msg  # the attempted URL
    assert all(f in msg for f in FILES)
    assert isinstance(info.value, FileNotFoundError)
    assert not any((isolated / "cache" / "fashion-mnist").iterdir())  # no partial downloads


def test_offline_error_mnist_and_download_disabled(isolated, server):
    with pytest.raises(data.DataNotFoundError, match=r"(?s)MNIST not found.*disabled") as info:
        data.load_mnist(download=False)
    assert "apt-get" not in str(info.value)  # Debian packages only Fashion-MNIST
    assert server.requests == []


# --------------------------------------------------------------------------- downloads


def test_download_success(server, tmp_path):
    body = gzip.compress(idx_bytes(GOOD))
    server.routes["/good/f.gz"] = body
    out = data._download("f.gz", tmp_path / "c", [server.base + "/good/"], hashlib.sha256(body).hexdigest(),
                         size=len(body), timeout=5)
    assert out == tmp_path / "c" / "f.gz" and out.read_bytes() == body
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["f.gz"]  # no temp file left
    assert server.requests == ["/good/f.gz"]


def test_download_hash_mismatch_leaves_nothing(server, tmp_path):
    server.routes["/good/f.gz"] = b"tampered"
    with pytest.raises(data.DownloadError, match=r"(?s)/good/f\.gz: SHA-256 mismatch: expected 0{64}"):
        data._download("f.gz", tmp_path / "c", [server.base + "/good/"], "0" * 64, timeout=5)
    assert list((tmp_path / "c").iterdir()) == []
    assert server.requests == ["/good/f.gz"]


def test_download_oversized_body_rejected(server, tmp_path):
    body = b"x" * 1000
    server.routes["/good/f.gz"] = body
    with pytest.raises(data.DownloadError, match="more than the expected 10 bytes"):
        data._download("f.gz", tmp_path / "c", [server.base + "/good/"], hashlib.sha256(body).hexdigest(),
                       size=10, timeout=5)
    assert list((tmp_path / "c").iterdir()) == []


def test_download_404_falls_back_to_next_mirror(server, tmp_path):
    body = b"payload"
    server.routes["/second/f.gz"] = body
    mirrors = [server.base + "/first/", server.base + "/second/"]
    out = data._download("f.gz", tmp_path, mirrors, hashlib.sha256(body).hexdigest(), timeout=5)
    assert out.read_bytes() == body
    assert server.requests == ["/first/f.gz", "/second/f.gz"]


def test_download_reports_every_mirror(server, tmp_path):
    dead = f"http://127.0.0.1:{unused_port()}/"
    with pytest.raises(data.DownloadError) as info:
        data._download("f.gz", tmp_path, [server.base + "/a/", dead], "0" * 64, timeout=5)
    msg = str(info.value)
    assert f"{server.base}/a/f.gz: HTTP 404" in msg and f"{dead}f.gz: " in msg
    assert server.requests == ["/a/f.gz"]


def test_download_timeout_is_bounded(tmp_path):
    # A listening socket that never accepts: the kernel completes the handshake,
    # the request is buffered, and no response ever comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        base = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        with pytest.raises(data.DownloadError, match="timed out"):
            data._download("f.gz", tmp_path, [base], "0" * 64, timeout=0.2)
    assert list(tmp_path.iterdir()) == []


def test_load_downloads_into_cache_then_reuses_it(isolated, server, monkeypatch):
    arrays = make_dataset()
    bodies = gz_files(arrays)
    server.routes.update({f"/good/{n}": b for n, b in bodies.items()})
    patch_spec(monkeypatch, "mnist", mirrors=(server.base + "/gone/", server.base + "/good/"),
               files={n: (hashlib.sha256(b).hexdigest(), len(b)) for n, b in bodies.items()})
    (xtr, ytr), (xte, yte) = data.load_mnist()
    np.testing.assert_array_equal(ytr, arrays[FILES[1]])
    np.testing.assert_array_equal(xte, arrays[FILES[2]].reshape(-1, 784) / np.float32(255))
    cache = isolated / "cache" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(FILES)
    assert len(server.requests) == 8  # each file: 404 on the first mirror, then 200
    data.load_mnist()
    assert len(server.requests) == 8  # served from the cache


def test_load_rejects_bad_download_and_keeps_cache_clean(isolated, server, monkeypatch):
    bodies = gz_files(make_dataset())
    server.routes.update({f"/good/{n}": b for n, b in bodies.items()})
    patch_spec(monkeypatch, "mnist", mirrors=(server.base + "/good/",),
               files={n: ("f" * 64, None) for n in bodies})
    with pytest.raises(data.DataNotFoundError, match="SHA-256 mismatch"):
        data.load_mnist()
    assert list((isolated / "cache" / "mnist").iterdir()) == []
    assert len(server.requests) == 1  # gave up after the first file failed everywhere


# --------------------------------------------------------------------------- batches


def _xy(n=103, d=5):
    return np.arange(n * d, dtype=np.float32).reshape(n, d), np.arange(n, dtype=np.int64)


def test_batches_deterministic_and_complete():
    x, y = _xy()
    a = list(data.batches(x, y, 10, seed=42))
    b = list(data.batches(x, y, 10, seed=42))
    assert [len(yb) for _, yb in a] == [10] * 10 + [3]
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    order = np.concatenate([yb for _, yb in a])
    assert sorted(order.tolist()) == list(range(103))
    assert order.tolist() != list(range(103))
    other = np.concatenate([yb for _, yb in data.batches(x, y, 10, seed=43)])
    assert order.tolist() != other.tolist()
    for xb, yb in a:
        assert xb.dtype == np.float32 and xb.flags.c_contiguous and yb.flags.c_contiguous
        np.testing.assert_array_equal(xb, x[yb])


def test_batches_generator_advances_between_epochs():
    x, y = _xy(50)
    rng = np.random.default_rng(7)
    e1 = np.concatenate([yb for _, yb in data.batches(x, y, 8, seed=rng)])
    e2 = np.concatenate([yb for _, yb in data.batches(x, y, 8, seed=rng)])
    assert e1.tolist() != e2.tolist() and sorted(e2.tolist()) == list(range(50))
    rng = np.random.default_rng(7)
    assert np.concatenate([yb for _, yb in data.batches(x, y, 8, seed=rng)]).tolist() == e1.tolist()


def test_batches_drop_last_and_views():
    x, y = _xy(10)
    got = list(data.batches(x, y, 4, shuffle=False, drop_last=True))
    assert [yb.tolist() for _, yb in got] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    for xb, _ in got:
        assert np.shares_memory(xb, x)  # no copy when nothing needs converting
    assert sum(len(yb) for _, yb in data.batches(x, y, 4, seed=0, drop_last=True)) == 8
    assert list(data.batches(x[:0], y[:0], 4)) == []


def test_batches_convert_when_needed():
    x = np.arange(60, dtype=np.uint8).reshape(10, 6)[:, ::2]  # non-contiguous, not float32
    y = np.arange(10)
    for xb, yb in data.batches(x, y, 3, shuffle=False):
        assert xb.dtype == np.float32 and xb.flags.c_contiguous
        np.testing.assert_array_equal(xb, x[yb])


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_batches_bad_batch_size(bad):
    x, y = _xy(4)
    with pytest.raises(ValueError, match="batch_size"):
        data.batches(x, y, bad)


def test_batches_length_mismatch():
    x, y = _xy(4)
    with pytest.raises(ValueError, match="same number of samples"):
        data.batches(x, y[:3], 2)


# --------------------------------------------------------------------------- embedded and names


@pytest.fixture(scope="module")
def embedded():
    return data.load_embedded()


def test_embedded_format(embedded):
    (xtr, ytr), (xte, yte) = embedded
    assert xtr.shape == (6000, 784) and xte.shape == (1000, 784)
    assert xtr.dtype == np.float32 and xte.dtype == np.float32
    assert ytr.dtype == np.int64 and yte.dtype == np.int64
    assert 0.0 <= xtr.min() and xtr.max() <= 1.0 and xtr.max() > 0.9
    assert np.bincount(ytr, minlength=10).tolist() == [600] * 10
    assert np.bincount(yte, minlength=10).tolist() == [100] * 10
    (x3, _), _ = data.load_fashion_mnist_small(flatten=False)
    assert x3.shape == (6000, 28, 28)


def test_embedded_file_is_small():
    ref = importlib.resources.files("fastdense").joinpath("_data").joinpath("fashion_mnist_small.npz")
    assert len(ref.read_bytes()) < 6_000_000


def test_load_dataset_names(embedded):
    for name in ("embedded", "EMBEDDED", " embedded "):
        (x, _), _ = data.load_dataset(name)
        np.testing.assert_array_equal(x, embedded[0][0])
    with pytest.raises(ValueError, match="takes no path"):
        data.load_dataset("embedded", "somewhere")
    with pytest.raises(ValueError, match=r"unknown dataset 'cifar'.*'embedded'.*'mnist'.*'fashion-mnist'.*'fashion_mnist'"):
        data.load_dataset("cifar")


def test_load_dataset_dispatch(isolated):
    d = write_dataset(isolated / "d", make_dataset(label=4))
    for name in ("mnist", "fashion-mnist", "fashion_mnist", "Fashion-MNIST"):
        (_, y), _ = data.load_dataset(name, d)
        assert set(y.tolist()) == {4}


@pytest.mark.skipif(not HAVE_SYSTEM_FASHION, reason="dataset-fashion-mnist is not installed")
def test_embedded_rows_come_from_real_dataset(embedded):
    ref = importlib.resources.files("fastdense").joinpath("_data").joinpath("fashion_mnist_small.npz")
    with ref.open("rb") as f, np.load(f) as npz:
        train_index, test_index = npz["train_index"], npz["test_index"]
    (xtr, ytr), (xte, yte) = embedded
    for split, x, y, index in (("train", xtr, ytr, train_index), ("t10k", xte, yte, test_index)):
        images = data.read_idx(SYSTEM_DIR / f"{split}-images-idx3-ubyte.gz")
        labels = data.read_idx(SYSTEM_DIR / f"{split}-labels-idx1-ubyte.gz")
        assert len(np.unique(index)) == len(index)
        np.testing.assert_array_equal(x, images[index].reshape(-1, 784) / np.float32(255))
        np.testing.assert_array_equal(y, labels[index])


@pytest.mark.skipif(not HAVE_SYSTEM_FASHION, reason="dataset-fashion-mnist is not installed")
def test_full_fashion_mnist_from_system_dir(monkeypatch):
    patch_spec(monkeypatch, "fashion-mnist", system_dirs=(str(SYSTEM_DIR),))
    (xtr, ytr), (xte, yte) = data.load_fashion_mnist(download=False)
    assert xtr.shape == (60000, 784) and xte.shape == (10000, 784)
    assert xtr.dtype == np.float32 and ytr.dtype == np.int64
    assert ytr.min() == 0 and ytr.max() == 9 and yte.min() == 0 and yte.max() == 9
    assert np.bincount(ytr).tolist() == [6000] * 10
