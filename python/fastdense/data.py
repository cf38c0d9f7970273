"""Datasets for fastdense: IDX files, MNIST / Fashion-MNIST, the embedded subset, minibatches.

Only numpy and the standard library are used here, so this module can be
imported (and tested) without the compiled extension.

Where ``load_mnist`` / ``load_fashion_mnist`` look for the four IDX files, in order:

1. the directory passed as ``path``;
2. the cache directory: ``$FASTDENSE_DATA/<dataset>`` if ``FASTDENSE_DATA`` is
   set, else ``$XDG_CACHE_HOME/fastdense/<dataset>`` (``~/.cache/fastdense/<dataset>``);
3. for Fashion-MNIST only, the copy installed by Debian's
   ``dataset-fashion-mnist`` package in ``/usr/share/datasets/fashion-mnist``;
4. the standard mirrors, downloaded into the cache directory and checked
   against pinned SHA-256 hashes.

``<dataset>`` is ``mnist`` or ``fashion-mnist``: the two datasets use the same
file names, so they cannot share one directory.

Example:
    >>> from fastdense.data import load_dataset, batches
    >>> (x_train, y_train), (x_test, y_test) = load_dataset("embedded")
    >>> for xb, yb in batches(x_train, y_train, 128, seed=0):
    ...     pass
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.client
import importlib.resources
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Iterator, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = [
    "DATASET_NAMES",
    "FASHION_MNIST_CLASSES",
    "SYSTEM_FASHION_MNIST_DIR",
    "DataNotFoundError",
    "DownloadError",
    "batches",
    "cache_dir",
    "load_dataset",
    "load_embedded",
    "load_fashion_mnist",
    "load_fashion_mnist_small",
    "load_mnist",
    "read_idx",
]

Split = Tuple[np.ndarray, np.ndarray]

#: Names accepted by :func:`load_dataset` (``"fashion_mnist"`` is also accepted).
DATASET_NAMES = ("embedded", "mnist", "fashion-mnist")

#: Label names of Fashion-MNIST (and of the embedded subset), by class index.
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

#: Where Debian's ``dataset-fashion-mnist`` package installs the four files.
SYSTEM_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

_GZIP_MAGIC = b"\x1f\x8b"

# IDX type codes; all multi-byte types are big-endian in the file.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
_TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
_TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
_TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
_FILES = (_TRAIN_IMAGES, _TRAIN_LABELS, _TEST_IMAGES, _TEST_LABELS)

_EMBEDDED_RESOURCE = ("_data", "fashion_mnist_small.npz")


@dataclasses.dataclass(frozen=True)
class _DatasetSpec:
    """Everything needed to find or fetch one dataset (tests swap these out)."""

    title: str  # for messages
    dirname: str  # subdirectory of the cache root
    mirrors: Tuple[str, ...]  # base URLs ending in "/", tried in order
    files: dict  # file name -> (sha256 of the file as served, size in bytes)
    system_dirs: Tuple[str, ...] = ()
    system_hint: str = ""  # how to install the system copy, for the error message


# Hashes and sizes are of the .gz files exactly as the mirrors serve them.
# MNIST: the values used by torchvision / tensorflow-datasets for these mirrors.
# Fashion-MNIST: Zalando's originals (their published MD5s are
# 8d4fb7e6..., 25c81989..., bef4ecab..., bb300cfd...). Debian recompresses the
# files, so its .gz bytes differ although the decompressed IDX data is identical;
# that is why local directories are checked by structure, not by these hashes.
_DATASETS = {
    "mnist": _DatasetSpec(
        title="MNIST",
        dirname="mnist",
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        files={
            _TRAIN_IMAGES: ("440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422),
            _TRAIN_LABELS: ("3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881),
            _TEST_IMAGES: ("8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877),
            _TEST_LABELS: ("f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542),
        },
    ),
    "fashion-mnist": _DatasetSpec(
        title="Fashion-MNIST",
        dirname="fashion-mnist",
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://fashion-mnist.s3.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        files={
            _TRAIN_IMAGES: ("3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", 26421880),
            _TRAIN_LABELS: ("a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", 29515),
            _TEST_IMAGES: ("346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", 4422102),
            _TEST_LABELS: ("67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", 5148),
        },
        system_dirs=(SYSTEM_FASHION_MNIST_DIR,),
        system_hint="sudo apt-get install dataset-fashion-mnist   (Debian/Ubuntu)",
    ),
}


class DataNotFoundError(FileNotFoundError):
    """A dataset was found nowhere and could not be downloaded; the message says how to get it."""


class DownloadError(OSError):
    """Every mirror failed for a file; the message lists each URL and its error."""


# --------------------------------------------------------------------------- IDX


def read_idx(path: Union[str, os.PathLike]) -> np.ndarray:
    """Read an IDX file (the MNIST format), plain or gzip-compressed.

    Compression is detected from the gzip magic bytes, not from the file name.
    The header (two zero bytes, a type code, the number of dimensions, then
    one big-endian uint32 per dimension) is checked against the payload size.

    Args:
        path: the file to read.

    Returns:
        A writable numpy array in native byte order with the declared shape
        and type (uint8, int8, int16, int32, float32 or float64).

    Raises:
        ValueError: the file is not a well-formed IDX file (bad magic, unknown
            type code, truncated, trailing bytes, corrupt gzip stream); the
            message names the file and the problem.
        OSError: the file cannot be opened.

    Example:
        >>> images = read_idx("train-images-idx3-ubyte.gz")  # doctest: +SKIP
        >>> images.shape, images.dtype  # doctest: +SKIP
        ((60000, 28, 28), dtype('uint8'))
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(f"{path}: corrupt gzip stream ({e})") from None
        what = "decompressed data"
    else:
        what = "file"

    if len(data) < 4:
        raise ValueError(f"{path}: not an IDX file: {what} is {len(data)} bytes, shorter than the 4-byte magic number")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(
            f"{path}: not an IDX file: bad magic number 0x{data[:4].hex()} "
            "(expected two zero bytes, a type code and the number of dimensions)"
        )
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02X} ({d.name})" for c, d in _IDX_DTYPES.items())
        raise ValueError(f"{path}: unknown IDX type code 0x{code:02X} (known: {known})")
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(
            f"{path}: truncated IDX header: {ndim} dimensions need {header} header bytes, {what} has {len(data)}"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = _IDX_DTYPES[code]
    count = 1
    for d in shape:
        count *= d
    expected = count * dtype.itemsize
    found = len(data) - header
    if found != expected:
        problem = "truncated" if found < expected else f"{found - expected} unexpected trailing bytes"
        raise ValueError(
            f"{path}: {problem}: the {ndim}-d header declares shape {shape} of {dtype.name}, "
            f"i.e. {expected} payload bytes, but the {what} has {found} bytes after the {header}-byte header"
        )
    # astype copies into native byte order, which also makes the result writable.
    return np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


# ------------------------------------------------------------------ locating files


def cache_dir(dataset: str) -> Path:
    """Return the cache directory that downloads of ``dataset`` go to.

    ``$FASTDENSE_DATA/<dataset>`` if ``FASTDENSE_DATA`` is set, else
    ``$XDG_CACHE_HOME/fastdense/<dataset>`` (default ``~/.cache/fastdense/<dataset>``).
    The directory is not created.

    Args:
        dataset: ``"mnist"`` or ``"fashion-mnist"``.

    Example:
        >>> cache_dir("mnist").name
        'mnist'
    """
    spec = _spec(dataset)
    root = os.environ.get("FASTDENSE_DATA")
    if root:
        return Path(root).expanduser() / spec.dirname
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "fastdense" / spec.dirname


def _spec(dataset: str) -> _DatasetSpec:
    try:
        return _DATASETS[dataset]
    except KeyError:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(_DATASETS)}") from None


def _find_files(directory: Path, names: Sequence[str]) -> Tuple[dict, list]:
    """Map each wanted .gz name to an existing file, accepting the gunzipped name too."""
    found, missing = {}, []
    for name in names:
        for candidate in (directory / name, directory / name[: -len(".gz")]):
            if candidate.is_file():
                found[name] = candidate
                break
        else:
            missing.append(name)
    return found, missing


def _fetch(url: str, out, size: Optional[int], timeout: float) -> str:
    """Stream url into the open file out and return the SHA-256 of what was received."""
    digest = hashlib.sha256()
    received = 0
    request = urllib.request.Request(url, headers={"User-Agent": "fastdense-data"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        # An unclosed HTTPError keeps its socket open until GC (ResourceWarning).
        e.close()
        raise OSError(f"HTTP {e.code} {e.reason}") from None
    with response:
        while True:
            chunk = response.read(1 << 16)
            if not chunk:
                break
            received += len(chunk)
            # Stop early on a wrong or endless body instead of filling the disk.
            if size is not None and received > size:
                raise OSError(f"server sent more than the expected {size} bytes")
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _download(
    name: str,
    dest_dir: Path,
    mirrors: Sequence[str],
    sha256: str,
    size: Optional[int] = None,
    timeout: float = 30.0,
) -> Path:
    """Fetch one file into dest_dir from the first mirror that serves it with the right hash.

    The data goes to a temporary file in dest_dir that is renamed into place
    only after the hash matched, so a failed or concurrent download never
    leaves a partial or wrong file under the final name.

    Raises:
        DownloadError: every mirror failed; the message lists each URL and why.
        OSError: dest_dir cannot be created or written.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / name
    failures = []
    for base in mirrors:
        url = base + name
        fd, tmp_name = tempfile.mkstemp(dir=dest_dir, prefix=f".{name}.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                got = _fetch(url, out, size, timeout)
            if got != sha256:
                raise ValueError(f"SHA-256 mismatch: expected {sha256}, got {got}")
            os.replace(tmp, dest)
            return dest
        except (OSError, ValueError, http.client.HTTPException) as e:
            reason = getattr(e, "reason", None)  # URLError wraps the socket error
            failures.append(f"{url}: {reason if reason is not None else e}")
        finally:
            tmp.unlink(missing_ok=True)
    raise DownloadError(f"could not download {name}:\n  " + "\n  ".join(failures))


def _locate(dataset: str, path, download: bool, timeout: float) -> dict:
    """Return {file name: Path} for the four files, following the documented lookup order."""
    spec = _spec(dataset)
    names = list(spec.files)
    cache = cache_dir(dataset)
    candidates = []
    if path is not None:
        candidates.append((Path(path).expanduser(), "given path"))
    candidates.append((cache, "cache"))
    candidates.extend((Path(d), "system copy") for d in spec.system_dirs)

    looked = []
    for directory, label in candidates:
        found, missing = _find_files(directory, names)
        if not missing:
            return found
        why = "does not exist" if not directory.is_dir() else "missing " + ", ".join(missing)
        looked.append(f"{directory} ({label}: {why})")

    failure = "downloading was disabled (download=False)"
    if download:
        found, _ = _find_files(cache, names)
        try:
            for name in names:
                if name not in found:
                    sha256, size = spec.files[name]
                    found[name] = _download(name, cache, spec.mirrors, sha256, size, timeout)
            return found
        except DownloadError as e:
            # Stop at the first file that fails: offline, the others would only add timeouts.
            failure = str(e)
        except OSError as e:
            failure = f"could not write to the cache directory {cache}: {e}"
    raise DataNotFoundError(_not_found_message(spec, cache, looked, failure))


def _not_found_message(spec: _DatasetSpec, cache: Path, looked: list, failure: str) -> str:
    files = ", ".join(spec.files)
    lines = [
        f"{spec.title} not found and not downloaded.",
        "Looked in:",
        *(f"  - {entry}" for entry in looked),
        f"Download: {failure}",
        "To get the data, do one of:",
    ]
    if spec.system_hint:
        lines.append(f"  - install the system copy: {spec.system_hint}")
    lines += [
        f"  - download {files} from {spec.mirrors[0]} (or another mirror above)"
        f" and put them in {cache}",
        "  - put the four files in any directory and pass it as path=",
        f"  - set FASTDENSE_DATA=DIR and put the files in DIR/{spec.dirname}",
        '  - or use the small built-in subset of Fashion-MNIST: load_dataset("embedded")',
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------ loading


def _prepare(images: np.ndarray, labels: np.ndarray, flatten: bool, source: str) -> Split:
    """Scale uint8 images to float32 [0, 1] and labels to int64, checking they belong together."""
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"{source}: expected uint8 images of shape (n, rows, cols), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(f"{source}: {images.shape[0]} images but labels of shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{source}: labels outside 0..9 (min {labels.min()}, max {labels.max()})")
    x = images.reshape(images.shape[0], -1) if flatten else images
    x = x.astype(np.float32)
    # In-place division keeps a single float32 buffer (60000x784 is ~188 MB).
    x /= np.float32(255.0)
    return x, labels.astype(np.int64)


def _load_idx_dataset(dataset: str, path, flatten: bool, download: bool, timeout: float) -> Tuple[Split, Split]:
    files = _locate(dataset, path, download, timeout)
    train = _prepare(read_idx(files[_TRAIN_IMAGES]), read_idx(files[_TRAIN_LABELS]), flatten,
                     str(files[_TRAIN_IMAGES].parent))
    test = _prepare(read_idx(files[_TEST_IMAGES]), read_idx(files[_TEST_LABELS]), flatten,
                    str(files[_TEST_IMAGES].parent))
    return train, test


def load_mnist(
    path: Union[str, os.PathLike, None] = None,
    *,
    flatten: bool = True,
    download: bool = True,
    timeout: float = 30.0,
) -> Tuple[Split, Split]:
    """Load MNIST handwritten digits (60000 train / 10000 test images).

    Looks in ``path``, then the cache directory (see :func:`cache_dir`), then
    downloads from the mirrors into the cache, verifying SHA-256 hashes.
    Files may be gzipped (``*.gz``) or already uncompressed (same name without ``.gz``).

    Args:
        path: a directory holding ``train-images-idx3-ubyte.gz``,
            ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz`` and
            ``t10k-labels-idx1-ubyte.gz``; optional.
        flatten: return images as (n, 784) rows; if False, as (n, 28, 28).
        download: allow downloading when no local copy is found.
        timeout: seconds a network connection may stall before a mirror is given up.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: x float32 in [0, 1], y int64 in 0..9.

    Raises:
        DataNotFoundError: no complete local copy and the download failed or was
            disabled; the message says where it looked and how to get the data.
        ValueError: a file exists but is corrupt.

    Example:
        >>> (x_train, y_train), (x_test, y_test) = load_mnist()  # doctest: +SKIP
        >>> x_train.shape, y_train.dtype  # doctest: +SKIP
        ((60000, 784), dtype('int64'))
    """
    return _load_idx_dataset("mnist", path, flatten, download, timeout)


def load_fashion_mnist(
    path: Union[str, os.PathLike, None] = None,
    *,
    flatten: bool = True,
    download: bool = True,
    timeout: float = 30.0,
) -> Tuple[Split, Split]:
    """Load Fashion-MNIST (Zalando; 60000 train / 10000 test clothing images, 10 classes).

    Looks in ``path``, then the cache directory (see :func:`cache_dir`), then
    Debian's ``/usr/share/datasets/fashion-mnist`` (``apt-get install
    dataset-fashion-mnist``), then downloads from the mirrors into the cache,
    verifying SHA-256 hashes. Class names are in :data:`FASHION_MNIST_CLASSES`.

    Args:
        path: a directory holding the four IDX files (same names as MNIST's,
            gzipped or not); optional.
        flatten: return images as (n, 784) rows; if False, as (n, 28, 28).
        download: allow downloading when no local copy is found.
        timeout: seconds a network connection may stall before a mirror is given up.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: x float32 in [0, 1], y int64 in 0..9.

    Raises:
        DataNotFoundError: no complete local copy and the download failed or was
            disabled; the message says where it looked and how to get the data.
        ValueError: a file exists but is corrupt.

    Example:
        >>> (x_train, y_train), (x_test, y_test) = load_fashion_mnist()  # doctest: +SKIP
        >>> x_test.shape  # doctest: +SKIP
        (10000, 784)
    """
    return _load_idx_dataset("fashion-mnist", path, flatten, download, timeout)


def load_embedded(*, flatten: bool = True) -> Tuple[Split, Split]:
    """Load the small Fashion-MNIST subset shipped inside the package (no files, no network).

    6000 training images (600 per class, from the original training split) and
    1000 test images (100 per class, from the original test split), chosen with
    a fixed seed by ``tools/make_embedded_data.py``. Fashion-MNIST is
    (c) Zalando SE, MIT License (see ``fastdense/_data/LICENSE-fashion-mnist.txt``).

    Args:
        flatten: return images as (n, 784) rows; if False, as (n, 28, 28).

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: x float32 in [0, 1], y int64 in 0..9.

    Example:
        >>> (x_train, y_train), (x_test, y_test) = load_embedded()
        >>> x_train.shape, x_test.shape
        ((6000, 784), (1000, 784))
    """
    package = __name__.rpartition(".")[0] or "fastdense"
    resource = importlib.resources.files(package)
    for part in _EMBEDDED_RESOURCE:
        # One part per call: Traversable.joinpath takes a single argument before Python 3.11.
        resource = resource.joinpath(part)
    with resource.open("rb") as f, np.load(f) as npz:
        arrays = {k: npz[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    source = "embedded " + "/".join(_EMBEDDED_RESOURCE)
    return (
        _prepare(arrays["x_train"], arrays["y_train"], flatten, source),
        _prepare(arrays["x_test"], arrays["y_test"], flatten, source),
    )


#: Alias of :func:`load_embedded`.
load_fashion_mnist_small = load_embedded


def load_dataset(
    name: str,
    path: Union[str, os.PathLike, None] = None,
    *,
    flatten: bool = True,
    download: bool = True,
) -> Tuple[Split, Split]:
    """Load a dataset by name: ``"embedded"``, ``"mnist"`` or ``"fashion-mnist"``.

    Args:
        name: one of :data:`DATASET_NAMES` (case-insensitive; ``"fashion_mnist"``
            also works).
        path: directory with the IDX files, passed to :func:`load_mnist` /
            :func:`load_fashion_mnist`; must be None for ``"embedded"``.
        flatten: return images as (n, 784) rows; if False, as (n, 28, 28).
        download: allow downloading (ignored for ``"embedded"``).

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: x float32 in [0, 1], y int64.

    Raises:
        ValueError: unknown name (the message lists the valid ones), or a path
            given for the embedded dataset.

    Example:
        >>> (x_train, y_train), _ = load_dataset("embedded")
        >>> int(y_train.max())
        9
    """
    key = str(name).strip().lower().replace("_", "-")
    if key == "embedded":
        if path is not None:
            raise ValueError("the embedded dataset ships with the package and takes no path")
        return load_embedded(flatten=flatten)
    if key == "mnist":
        return load_mnist(path, flatten=flatten, download=download)
    if key == "fashion-mnist":
        return load_fashion_mnist(path, flatten=flatten, download=download)
    valid = ", ".join(repr(n) for n in (*DATASET_NAMES, "fashion_mnist"))
    raise ValueError(f"unknown dataset {name!r}; valid names: {valid}")


# ------------------------------------------------------------------ minibatches


def batches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    *,
    shuffle: bool = True,
    seed: Union[int, np.random.Generator, None] = None,
    drop_last: bool = False,
) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """Yield one epoch of minibatches ``(xb, yb)``, each sample exactly once.

    ``xb`` is always a C-contiguous float32 array and ``yb`` a C-contiguous
    array of ``y``'s dtype, ready for the C++ kernels. Without shuffling, batches
    of a C-contiguous float32 ``x`` are views (no copy); with shuffling each
    batch is one gather.

    Args:
        x: samples, shape (n, ...).
        y: targets, shape (n, ...).
        batch_size: samples per batch (the last one may be smaller).
        shuffle: visit the samples in a random order.
        seed: an int gives the same order on every call; a ``numpy.random.Generator``
            is advanced, so reusing one across epochs gives a new order each epoch
            that is still reproducible from its seed; None draws fresh entropy.
        drop_last: skip the final batch if it is smaller than ``batch_size``.

    Example:
        >>> x = np.arange(10, dtype=np.float32).reshape(5, 2)
        >>> y = np.arange(5)
        >>> [yb.tolist() for _, yb in batches(x, y, 2, shuffle=False)]
        [[0, 1], [2, 3], [4]]
    """
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    batch_size = int(batch_size)
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim == 0 or y.ndim == 0 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must have the same number of samples, got shapes {x.shape} and {y.shape}")
    n = x.shape[0]
    order = np.random.default_rng(seed).permutation(n) if shuffle else None
    # A separate generator so that bad arguments raise here, not at the first next().
    return _iter_batches(x, y, batch_size, order, drop_last)


def _iter_batches(x, y, batch_size, order, drop_last):
    n = x.shape[0]
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        end = min(start + batch_size, n)
        if order is None:
            # ascontiguousarray returns the slice itself when it is already float32 and contiguous.
            xb = np.ascontiguousarray(x[start:end], dtype=np.float32)
            yb = np.ascontiguousarray(y[start:end])
        else:
            idx = order[start:end]
            xb = np.ascontiguousarray(x.take(idx, axis=0), dtype=np.float32)
            yb = y.take(idx, axis=0)
        yield xb, yb
