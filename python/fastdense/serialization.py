"""Saving and loading models: one ``.npz`` file, written atomically, checked on load.

The file is a numpy ``.npz`` (a zip of ``.npy`` arrays, loaded with ``allow_pickle=False``):
``__header__`` holds UTF-8 JSON — format tag and version, fastdense version, the model's
architecture with its initializer names, the loss and optimizer configuration and scalar
optimizer state — and a SHA-256 of every array's bytes; the arrays are the parameters and the
optimizer's momentum buffers. The file is written to a temporary name in the same directory,
flushed to disk, and renamed over the target, so an interrupted save never leaves a
half-written file where a good one was. A truncated or altered file raises
:class:`ModelFileError` instead of loading garbage.

>>> import fastdense, tempfile, os
>>> model = fastdense.MLP([4, 3, 2], seed=0)
>>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
>>> model.save(path)
>>> restored = fastdense.load(path)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile

import numpy as np

FORMAT = "fastdense-model"
FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A model file that is not a complete, untampered fastdense model."""


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def save(model, path) -> None:
    """Save ``model`` (a built :class:`~fastdense.Sequential`) to ``path`` atomically."""
    from fastdense import __version__

    model._require_built()
    arrays = {f"param_{i}": p for i, p in enumerate(model.parameters())}
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fastdense_version": __version__,
        "model": model.get_config(),
        "loss": model.loss.get_config() if model.loss is not None else None,
        "optimizer": None,
    }
    if model.optimizer is not None:
        state = model.optimizer.state_dict()
        buffers = state.pop("momentum_buffers")
        header["optimizer"] = {"state": state, "buffers": buffers is not None}
        for i, b in enumerate(buffers or []):
            arrays[f"momentum_{i}"] = b
    header["sha256"] = {k: _digest(v) for k, v in arrays.items()}
    blob = json.dumps(header, sort_keys=True).encode("utf-8")
    arrays["__header__"] = np.frombuffer(blob, dtype=np.uint8)

    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastdense-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _read(path):
    with open(path, "rb") as f:  # a missing file is the caller's FileNotFoundError
        raw = f.read()
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            bad = z.testzip()  # CRC of every member: catches truncation and bit flips
            if bad is not None:
                raise ModelFileError(f"{path}: member {bad!r} is corrupt (CRC mismatch)")
        with np.load(io.BytesIO(raw), allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
        raise ModelFileError(f"{path}: not a readable fastdense model file ({e})") from None
    if "__header__" not in arrays:
        raise ModelFileError(f"{path}: no fastdense header; not a model saved by fastdense")
    try:
        header = json.loads(arrays.pop("__header__").tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{path}: the header is not valid JSON ({e})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a fastdense model file")
    if header.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: format version {header.get('format_version')} is not supported "
            f"(this fastdense reads version {FORMAT_VERSION})"
        )
    digests = header.get("sha256", {})
    if set(digests) != set(arrays):
        raise ModelFileError(f"{path}: the arrays in the file do not match its header")
    for k, a in arrays.items():
        if _digest(a) != digests[k]:
            raise ModelFileError(f"{path}: array {k!r} does not match its checksum; the file was altered")
    return header, arrays


def load(path):
    """Load a model saved with :meth:`Sequential.save`: architecture, weights, loss and
    optimizer state, ready to predict or to continue training.

    Raises:
        FileNotFoundError: no file at ``path``.
        ModelFileError: the file is truncated, altered or not a fastdense model.
    """
    from fastdense import init, losses, optim
    from fastdense.model import Dense, ReLU, Sequential

    path = os.fspath(path)
    header, arrays = _read(path)
    try:
        cfg = header["model"]
        layers = []
        for lc in cfg["layers"]:
            if lc["class"] == "Dense":
                layers.append(Dense(lc["units"], activation=lc["activation"],
                                    kernel_init=init.get(lc["kernel_init"]),
                                    bias_init=init.get(lc["bias_init"]),
                                    use_bias=lc["use_bias"]))
            elif lc["class"] == "ReLU":
                layers.append(ReLU())
            else:
                raise ModelFileError(f"{path}: unknown layer class {lc['class']!r}")
        model = Sequential(layers, input_dim=cfg["input_dim"], seed=cfg.get("seed"))
        params = model.parameters()
        saved = [arrays[f"param_{i}"] for i in range(len(params))]
        if len(arrays) < len(params) or any(a.shape != p.shape for a, p in zip(saved, params)):
            raise ModelFileError(f"{path}: the weights do not fit the saved architecture")
        model.set_weights(saved)
        if header.get("loss") is not None:
            model.loss = losses.get(header["loss"])
        opt = header.get("optimizer")
        if opt is not None:
            state = dict(opt["state"])
            model.optimizer = optim.SGD.from_config(model.parameters(), state["config"])
            state["momentum_buffers"] = (
                [arrays[f"momentum_{i}"] for i in range(len(params))] if opt["buffers"] else None
            )
            model.optimizer.load_state_dict(state)
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"{path}: the model description is invalid ({e})") from None
    return model
