"""Layers and models: ``Dense``, ``ReLU``, ``Sequential`` and the ``MLP`` shortcut.

A model owns its parameters as float32 numpy arrays, stored the way the kernels want them:
a Dense kernel is ``(in_features, out_features)`` so ``y = x @ W + b`` (PyTorch's
``Linear.weight`` is our ``W.T``). Building a model compiles its layers into a short plan of
fused stages — each Dense with its bias and an optional ReLU in the GEMM epilogue — so a
training step crosses into C++ ``3·L + 1`` times for ``L`` Dense layers (forward GEMMs, the
fused loss, the weight and input gradients, one SGD call), and reuses one set of buffers per
batch size instead of allocating.

>>> import numpy as np, fastdense
>>> model = fastdense.MLP([784, 100, 10], kernel_init="he_normal", seed=0)
>>> model.compile(lr=0.1, momentum=0.9)
>>> x = np.random.default_rng(0).random((64, 784), dtype=np.float32)
>>> y = np.arange(64) % 10
>>> loss = model.train_step(x, y)
"""

from __future__ import annotations

import math
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from fastdense import _core
from fastdense import _memory
from fastdense import init as _init
from fastdense import losses as _losses
from fastdense import optim as _optim

_ACTIVATIONS = (None, "linear", "relu")
_LABEL_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))
_F32, _I32, _I64 = np.dtype(np.float32), _LABEL_DTYPES[0], _LABEL_DTYPES[1]


class Layer:
    """Base class: a layer knows its parameters and how to build them for an input width."""

    def build(self, input_dim: int, kernel_rng, bias_rng) -> int:
        """Create parameters for ``input_dim`` input features; return the output width."""
        return input_dim

    def parameters(self) -> List[np.ndarray]:
        return []

    def gradients(self) -> List[np.ndarray]:
        return []

    def get_config(self) -> dict:
        return {"class": type(self).__name__}


class Dense(Layer):
    """A fully connected layer ``y = activation(x @ W + b)``.

    Args:
        units: number of output features.
        activation: ``None`` (identity) or ``"relu"``. Default: ``None``.
        kernel_init: initializer for ``W`` of shape ``(in, units)``, as a name, config dict or
            :mod:`fastdense.init` object. Default: ``"glorot_uniform"`` (Keras's default).
        bias_init: initializer for ``b``. Default: ``"zeros"``.
        use_bias: whether the layer has a bias. Default: ``True``.
        input_dim: input features, if this is the first layer and the model should be built
            before it sees data.
        init: alias of ``kernel_init`` (``Dense(100, init="he_normal")``); give one or the
            other.

    >>> layer = Dense(100, activation="relu", kernel_init="he_normal")
    """

    def __init__(self, units, activation=None, kernel_init="glorot_uniform", bias_init="zeros",
                 use_bias=True, input_dim=None, *, init=None):
        if init is not None:
            if kernel_init != "glorot_uniform":
                raise ValueError("pass either `init` or `kernel_init`, not both. Received: "
                                 f"init={init!r}, kernel_init={kernel_init!r}")
            kernel_init = init
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units < 1:
            raise ValueError(f"Argument `units` must be a positive integer. Received: units={units!r}")
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"Argument `activation` must be one of None, 'linear', 'relu'. "
                f"Received: activation={activation!r}"
            )
        self.units = int(units)
        self.activation = None if activation == "linear" else activation
        self.kernel_init = _init.get(kernel_init)
        self.bias_init = _init.get(bias_init)
        self.use_bias = bool(use_bias)
        self.input_dim = input_dim
        self.W: Optional[np.ndarray] = None
        self.b: Optional[np.ndarray] = None
        self.dW: Optional[np.ndarray] = None
        self.db: Optional[np.ndarray] = None

    def build(self, input_dim, kernel_rng, bias_rng):
        if self.input_dim is not None and self.input_dim != input_dim:
            raise ValueError(
                f"Dense(input_dim={self.input_dim}) cannot take {input_dim} input features"
            )
        self.input_dim = int(input_dim)
        self.W = _as_param(self.kernel_init((self.input_dim, self.units), rng=kernel_rng))
        self.dW = _memory.zeros(self.W.shape)
        if self.use_bias:
            self.b = _as_param(self.bias_init((self.units,), rng=bias_rng))
            self.db = _memory.zeros(self.b.shape)
        return self.units

    def parameters(self):
        return [self.W, self.b] if self.use_bias else [self.W]

    def gradients(self):
        return [self.dW, self.db] if self.use_bias else [self.dW]

    def get_config(self):
        return {
            "class": "Dense",
            "units": self.units,
            "activation": self.activation,
            "kernel_init": _init_config(self.kernel_init),
            "bias_init": _init_config(self.bias_init),
            "use_bias": self.use_bias,
            "input_dim": self.input_dim,
        }

    def __repr__(self):
        act = f", activation={self.activation!r}" if self.activation else ""
        return f"Dense({self.units}{act})"


class ReLU(Layer):
    """``max(x, 0)``. Placed after a Dense layer it is fused into that layer's GEMM."""

    def __repr__(self):
        return "ReLU()"


def _as_param(a):
    return _memory.copy(a, np.float32)


def _init_config(initializer):
    if hasattr(initializer, "get_config"):
        return initializer.get_config()
    return {"name": getattr(initializer, "__name__", repr(initializer)), "note": "callable"}


class _Stage:
    """One fused step of the plan: a Dense layer and whether a ReLU follows it."""

    __slots__ = ("dense", "relu")

    def __init__(self, dense, relu):
        self.dense, self.relu = dense, relu


class History:
    """What ``fit`` returns: per-epoch metrics in ``history`` (Keras's shape)."""

    def __init__(self):
        self.history: Dict[str, List[float]] = {}
        self.epoch: List[int] = []

    def append(self, epoch, **metrics):
        self.epoch.append(epoch)
        for k, v in metrics.items():
            self.history.setdefault(k, []).append(v)

    def __getitem__(self, key):
        return self.history[key]

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={sorted(self.history)})"


class Sequential:
    """A stack of ``Dense`` and ``ReLU`` layers trained with fused C++ kernels.

    Args:
        layers: the layers, first to last.
        input_dim: input features; if omitted, taken from the first ``Dense(input_dim=...)``
            or from the first batch the model sees.
        seed: seed for the initializers. Every layer gets its own stream
            (``SeedSequence(seed).spawn``), so one initializer object shared by several
            layers still draws different weights for each.

    >>> model = Sequential([Dense(100, activation="relu"), Dense(10)], input_dim=784, seed=0)
    >>> [w.shape for w in model.get_weights()]
    [(784, 100), (100,), (100, 10), (10,)]
    """

    def __init__(self, layers: Sequence[Layer], input_dim=None, seed=None):
        self.layers = list(layers)
        if not self.layers:
            raise ValueError("Sequential needs at least one layer")
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{i}] must be a fastdense layer, got {type(layer).__name__}")
        self._stages: List[_Stage] = []
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Dense):
                self._stages.append(_Stage(layer, layer.activation == "relu"))
            elif isinstance(layer, ReLU):
                if not self._stages:
                    raise ValueError(f"layers[{i}]: a ReLU must follow a Dense layer")
                self._stages[-1].relu = True
            else:
                raise TypeError(f"layers[{i}]: unsupported layer {type(layer).__name__}")
        self.seed = seed
        self.input_dim = input_dim if input_dim is not None else self._stages[0].dense.input_dim
        self.built = False
        self.loss = None
        self.optimizer = None
        self._workspaces: Dict[int, dict] = {}
        if self.input_dim is not None:
            self.build(self.input_dim)

    # -- construction ---------------------------------------------------------------------

    def build(self, input_dim: int):
        """Create every layer's parameters for ``input_dim`` input features."""
        if self.built:
            if input_dim != self.input_dim:
                raise ValueError(f"model was built for {self.input_dim} input features, got {input_dim}")
            return
        # Two independent streams per layer (kernel, bias), all spawned from the model seed.
        seeds = np.random.SeedSequence(self.seed).spawn(2 * len(self._stages))
        rngs = [np.random.default_rng(ss) for ss in seeds]
        width = int(input_dim)
        for i, stage in enumerate(self._stages):
            width = stage.dense.build(width, rngs[2 * i], rngs[2 * i + 1])
        self.input_dim = int(input_dim)
        self.output_dim = width
        self.built = True

    def compile(self, loss="softmax_cross_entropy", optimizer=None, **sgd_kwargs):
        """Choose the loss and the optimizer.

        Args:
            loss: a :mod:`fastdense.losses` name or object. Default: softmax cross-entropy.
            optimizer: a :class:`fastdense.optim.SGD` built on ``model.parameters()``, or
                ``None`` to build one from ``sgd_kwargs`` (``lr``, ``momentum``, ...).
        """
        self._require_built()
        self.loss = _losses.get(loss)
        if optimizer is None:
            optimizer = _optim.SGD(self.parameters(), **sgd_kwargs)
        elif sgd_kwargs:
            raise ValueError(f"pass SGD arguments or an optimizer, not both: {sorted(sgd_kwargs)}")
        self.optimizer = optimizer
        self._trainer = None
        return self

    def parameters(self) -> List[np.ndarray]:
        """The parameter arrays (``W, b`` per Dense layer), updated in place by training."""
        self._require_built()
        return [p for s in self._stages for p in s.dense.parameters()]

    def gradients(self) -> List[np.ndarray]:
        """Gradient arrays in the order of :meth:`parameters`, filled by :meth:`backward`."""
        self._require_built()
        return [g for s in self._stages for g in s.dense.gradients()]

    def get_weights(self) -> List[np.ndarray]:
        """Copies of the parameters (Keras's ``get_weights``)."""
        return [p.copy() for p in self.parameters()]

    def set_weights(self, weights: Sequence[np.ndarray]):
        """Copy ``weights`` into the parameters in place (optimizer references stay valid)."""
        params = self.parameters()
        if len(weights) != len(params):
            raise ValueError(f"set_weights: expected {len(params)} arrays, got {len(weights)}")
        for i, (p, w) in enumerate(zip(params, weights)):
            w = np.asarray(w)
            if w.shape != p.shape:
                raise ValueError(f"set_weights: weights[{i}] has shape {w.shape}, expected {p.shape}")
            if not np.all(np.isfinite(w)):
                raise ValueError(f"set_weights: weights[{i}] contains NaN or infinity")
            p[...] = w

    def summary(self) -> str:
        self._require_built()
        lines, width, total = [], self.input_dim, 0
        for s in self._stages:
            n = sum(p.size for p in s.dense.parameters())
            total += n
            act = " + ReLU" if s.relu else ""
            lines.append(f"Dense {width:>6} -> {s.dense.units:<6}{act:8} {n:>10,} params")
            width = s.dense.units
        lines.append(f"{'total':32} {total:>10,} params")
        return "\n".join(lines)

    # -- computation ----------------------------------------------------------------------

    def _workspace(self, m: int) -> dict:
        """Activation and gradient buffers for batch size ``m``, made once and reused."""
        ws = self._workspaces.get(m)
        if ws is None:
            widths = [s.dense.units for s in self._stages]
            ws = {
                "acts": [_memory.empty((m, w)) for w in widths],
                "grads": [_memory.empty((m, w)) for w in widths],
                "losses": np.empty(m, np.float32),
            }
            # A few batch sizes (the full one, the epoch's last, evaluation) are normal; an
            # unbounded number would only leak.
            if len(self._workspaces) >= 8:
                self._workspaces.clear()
            self._workspaces[m] = ws
        return ws

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Outputs (logits) for a batch ``x`` of shape ``(m, input_dim)``.

        With ``training=True`` the activations are kept in the model's buffers for
        :meth:`backward`, and the returned array is one of those buffers (valid until the next
        call with the same batch size).
        """
        x = self._check_x(x)
        if not training:
            h = x
            for s in self._stages:
                d = s.dense
                h = _core.matmul_forward(h, d.W, d.b, relu=s.relu)
            return h
        ws = self._workspace(x.shape[0])
        h = x
        for s, out in zip(self._stages, ws["acts"]):
            d = s.dense
            h = _core.matmul_forward(h, d.W, d.b, relu=s.relu, out=out)
        self._last_x = x
        return h

    def backward(self, doutput: np.ndarray):
        """Backpropagate ``d(loss)/d(outputs)`` from the last ``forward(training=True)`` into
        every layer's ``dW``/``db``; returns nothing (read :meth:`gradients`)."""
        x = self._last_x
        ws = self._workspace(x.shape[0])
        acts, grads = ws["acts"], ws["grads"]
        dz = doutput
        for i in range(len(self._stages) - 1, -1, -1):
            d = self._stages[i].dense
            a_in = acts[i - 1] if i > 0 else x
            _core.matmul_backward_weight(a_in, dz, dw=d.dW, db=d.db, bias=d.use_bias)
            if i > 0:
                # The previous stage's ReLU output doubles as its mask: a > 0 iff z > 0.
                mask = a_in if self._stages[i - 1].relu else None
                dz = _core.matmul_backward_input(dz, d.W, mask=mask, out=grads[i - 1])

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One SGD step on a batch: forward, loss, backward, update. Returns the batch loss.

        With softmax cross-entropy on integer labels and :class:`~fastdense.optim.SGD` (the
        common case) the whole step is one call into C++; ``x`` float32 C-contiguous and ``y``
        int32/int64 go in without a copy. The weights are not updated when the loss is not
        finite.
        """
        opt = self.optimizer
        if opt is None:
            raise RuntimeError("call model.compile(...) before training")
        cached, lr = self._trainer, None
        if (cached is not None and type(x) is np.ndarray and type(y) is np.ndarray
                and x.dtype is _F32 and (y.dtype is _I64 or y.dtype is _I32)
                and cached[0] == self._fused_key()):
            # The fused trainer checks x and y itself (order, shapes, label range) before it
            # runs anything; what it refuses goes through the checks below, which convert (a
            # strided view) or explain. Checking twice cost 1-2 us of a 30-40 us batch-1 step.
            # (Other dtypes go there directly: float64 input, uint8 labels.)
            lr = opt.current_lr  # (a schedule's own error is not one of the trainer's)
            try:
                loss, _, updated = cached[1].step(x, y, lr, not opt._bufs_ready)
            except (TypeError, ValueError):
                pass
            else:
                self._count_step(updated)
                return loss
        if not (type(x) is np.ndarray and x.dtype == np.float32 and x.flags.c_contiguous):
            x = self._check_x(x)
        if not (type(y) is np.ndarray and y.ndim == 1 and y.dtype in _LABEL_DTYPES):
            y = self._check_y(y, len(x))
        return self._train_step(x, y, lr=lr)[0]

    def _count_step(self, updated):
        """The optimizer's bookkeeping after a fused step (which updated the weights unless
        its loss was not finite)."""
        if updated:
            opt = self.optimizer
            opt._bufs_ready = opt._bufs_ready or opt.momentum != 0
            opt.iterations += 1

    def _train_step(self, x, y, idx=None, next_idx=None, lr=None):
        """(loss, correct predictions or None) for the batch ``(x, y)``, or for rows ``idx``
        (int64) of ``(x, y)`` when given; x and y already validated or cheap to check.
        ``next_idx``: the rows of the batch that follows, which the C++ step may prefetch.
        ``lr``: the optimizer's current learning rate when the caller has read it already."""
        trainer = self._fused_trainer(y)
        opt = self.optimizer
        if trainer is not None:
            first = not opt._bufs_ready
            if lr is None:
                lr = opt.current_lr
            if idx is None:
                loss, correct, updated = trainer.step(x, y, lr, first)
            else:  # the rows are gathered in C++, straight into the threads that use them
                loss, correct, updated = trainer.step_rows(x, y, idx, lr, first, next_idx)
            self._count_step(updated)
            return loss, correct
        if idx is not None:  # fit gathers for this path itself; kept so any caller is correct
            x, y = x[idx], y[idx]
        logits = self.forward(x, training=True)
        ws = self._workspace(x.shape[0])
        loss, dz = self.loss.value_and_grad(logits, y, grad_out=ws["grads"][-1])
        correct = None
        if y.ndim == 1:
            correct = int(np.count_nonzero(logits.argmax(axis=1) == y))
        if math.isfinite(loss):
            self.backward(dz)
            opt.step(self.gradients())
        return float(loss), correct

    def _fused_key(self):
        """(loss, optimizer, its configuration version) when the fused C++ step can run them
        (softmax cross-entropy without label smoothing, mean over the batch; SGD), else None.
        The objects themselves, not their ids: a cached trainer keeps them alive, so a new
        loss or optimizer never passes for the old one."""
        loss, opt = self.loss, self.optimizer
        if (type(loss) is _losses.SoftmaxCrossEntropy and loss.label_smoothing == 0
                and loss.reduction == "mean" and type(opt) is _optim.SGD):
            return (loss, opt, opt._config_version)
        return None

    def _fused_trainer(self, y):
        """The C++ trainer for the current loss and optimizer, or None when the step needs the
        general path (another loss or optimizer, float targets, label smoothing)."""
        opt = self.optimizer
        key = self._fused_key() if y.ndim == 1 and y.dtype in _LABEL_DTYPES else None
        if key is None:
            return None
        if self._trainer is not None and self._trainer[0] == key:
            return self._trainer[1]
        params = self.parameters()
        if len(opt.params) != len(params) or any(a is not b for a, b in zip(opt.params, params)):
            return None  # an optimizer over other arrays: let it see the gradients itself
        if opt.clipvalue is not None:
            clip = (1, opt.clipvalue)
        elif opt.clipnorm is not None:
            clip = (2, opt.clipnorm)
        elif opt.global_clipnorm is not None:
            clip = (3, opt.global_clipnorm)
        else:
            clip = (0, 0.0)
        dense = [s.dense for s in self._stages]
        trainer = _core.MLPTrainer(
            [d.W for d in dense], [d.b for d in dense], [d.dW for d in dense],
            [d.db for d in dense], [s.relu for s in self._stages],
            opt._momentum_buffers() if opt.momentum != 0 else None,
            momentum=opt.momentum, dampening=opt.dampening, weight_decay=opt.weight_decay,
            nesterov=opt.nesterov, clip_mode=clip[0], clip_threshold=clip[1],
        )
        self._trainer = (key, trainer)
        return trainer

    _trainer = None

    def fit(self, x, y, epochs=1, batch_size=32, validation_data=None, shuffle=True, seed=None,
            verbose=1, diagnose=True) -> History:
        """Train for ``epochs`` passes over ``(x, y)``.

        Args:
            x: inputs, ``(n, input_dim)``; converted once to C-contiguous float32.
            y: targets: integer class labels ``(n,)`` or float targets ``(n, outputs)``.
            epochs: passes over the data. Default: 1.
            batch_size: samples per step (the last batch may be smaller). Default: 32.
            validation_data: optional ``(x_val, y_val)`` evaluated after each epoch.
            shuffle: reshuffle every epoch (deterministically from ``seed``). Default: True.
            seed: seed for the shuffling. Default: None (fresh entropy).
            verbose: 0 silent; 1 a progress bar (tqdm, when installed and writing to a
                terminal) or one line per epoch; 2 one line per epoch. Default: 1.
            diagnose: before the model's first training step, check up to 256 training rows
                with :func:`fastdense.diagnostics.check_initialization` and warn once
                (``InitializationWarning``) if a layer is dead or symmetric, the signal
                vanishes or explodes, or values are non-finite. Default: True.

        Returns:
            a :class:`History` with per-epoch ``loss``, ``accuracy`` (classification),
            ``val_loss``, ``val_accuracy`` and ``time``.

        Raises:
            FloatingPointError: the loss became NaN or infinite (names the epoch and step).
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"Argument `batch_size` must be a positive integer. Received: batch_size={batch_size!r}")
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"Argument `epochs` must be a non-negative integer. Received: epochs={epochs!r}")
        x = self._check_x(x, check_finite=True)
        y = self._check_y(y, len(x))
        if self.optimizer is None:
            self.compile()
        if diagnose and not self._init_checked:
            self._init_checked = True  # once per model, warning or not
            from fastdense import diagnostics

            diagnostics.warn_initialization(self, x, y, stacklevel=3)
        n = len(x)
        rng = np.random.default_rng(seed)
        # Each shuffled batch is gathered right before its step, so it is still in cache when
        # the step reads it, and nothing is allocated per step or per epoch (a shuffled copy of
        # the whole dataset would cost a pass over memory). The fused C++ step gathers the rows
        # itself; otherwise they go into the same two buffers every step.
        fused = self._fused_trainer(y) is not None
        if shuffle and not fused:
            x_buf = np.empty((min(batch_size, n), x.shape[1]), np.float32)
            y_buf = np.empty((min(batch_size, n),) + y.shape[1:], y.dtype)
        classify = self._int_labels
        history = History()
        bar = _progress(verbose, epochs, n)
        for epoch in range(epochs):
            t0 = time.perf_counter()
            perm = rng.permutation(n) if shuffle else None
            total_loss, correct = 0.0, 0
            if bar:
                bar.start_epoch(epoch)
            for step, lo in enumerate(range(0, n, batch_size)):
                if perm is None:
                    xb, yb = x[lo:lo + batch_size], y[lo:lo + batch_size]
                    m = len(xb)
                    loss, batch_correct = self._train_step(xb, yb)
                else:
                    idx = perm[lo:lo + batch_size]
                    m = len(idx)
                    if fused:
                        nxt = perm[lo + batch_size:lo + 2 * batch_size]
                        loss, batch_correct = self._train_step(x, y, idx, nxt if len(nxt) else None)
                    else:
                        # mode="clip" gathers straight into the buffer ("raise" goes through a
                        # temporary); a permutation is always in range.
                        xb = np.take(x, idx, axis=0, out=x_buf[:m], mode="clip")
                        yb = np.take(y, idx, axis=0, out=y_buf[:m], mode="clip")
                        loss, batch_correct = self._train_step(xb, yb)
                if not math.isfinite(loss):
                    raise FloatingPointError(
                        f"the training loss became {loss} at epoch {epoch + 1}, step {step + 1}; "
                        f"the weights were not updated by that step. Try a smaller learning rate "
                        f"(lr={getattr(self.optimizer, 'current_lr', '?')}) or another "
                        f"initializer (e.g. 'he_normal' for ReLU layers), or clip gradients."
                    )
                total_loss += loss * m
                if classify:
                    correct += batch_correct
                if bar:
                    bar.update(m, total_loss / (lo + m), correct / (lo + m) if classify else None)
            metrics = {"loss": total_loss / n}
            if classify:
                metrics["accuracy"] = correct / n
            if validation_data is not None:
                val = self.evaluate(*validation_data)
                metrics.update({f"val_{k}": v for k, v in val.items()})
            metrics["time"] = time.perf_counter() - t0
            history.append(epoch, **metrics)
            if bar:
                bar.end_epoch(metrics)
        if bar:
            bar.close()
        return history

    def evaluate(self, x, y, batch_size=4096) -> dict:
        """Mean loss (and accuracy for integer labels) over ``(x, y)``, without training."""
        x = self._check_x(x)
        y = self._check_y(y, len(x))
        loss_fn = self.loss or _losses.get("softmax_cross_entropy")
        total, correct = 0.0, 0
        for lo in range(0, len(x), batch_size):
            xb, yb = x[lo:lo + batch_size], y[lo:lo + batch_size]
            out = self.forward(xb)
            value = loss_fn(out, yb)
            total += float(value) * len(xb)
            if self._int_labels:
                correct += int(np.count_nonzero(out.argmax(axis=1) == yb))
        result = {"loss": total / len(x)}
        if self._int_labels:
            result["accuracy"] = correct / len(x)
        return result

    def predict(self, x, batch_size=4096) -> np.ndarray:
        """Model outputs (logits for a classifier) for ``x``, as a new float32 array."""
        x = self._check_x(x)
        return np.concatenate([self.forward(x[lo:lo + batch_size]) for lo in range(0, len(x), batch_size)])

    def predict_proba(self, x, batch_size=4096) -> np.ndarray:
        """Class probabilities: the softmax of :meth:`predict`, computed stably."""
        z = self.predict(x, batch_size).astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        return z.astype(np.float32)

    # -- validation -----------------------------------------------------------------------

    def _require_built(self):
        if not self.built:
            raise RuntimeError("the model is not built yet: give input_dim or call build(input_dim)")

    def _check_x(self, x, check_finite=False):
        if not isinstance(x, np.ndarray):
            x = np.asarray(x)
        if x.ndim != 2:
            raise ValueError(f"expected x of shape (batch, {self.input_dim or 'features'}), got {x.shape}")
        if x.shape[0] == 0:
            raise ValueError(f"x is an empty batch: shape {x.shape}")
        if not self.built:
            self.build(x.shape[1])
        if x.shape[1] != self.input_dim:
            raise ValueError(f"expected x of shape (batch, {self.input_dim}), got {x.shape}")
        if x.dtype != np.float32 or not x.flags.c_contiguous:
            if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
                raise TypeError(f"expected x of a real numeric dtype, got {x.dtype}")
            x = np.ascontiguousarray(x, dtype=np.float32)
        # One threaded pass in C++ that allocates nothing (np.isfinite would build a boolean
        # copy of the whole dataset; min and max took two passes).
        if check_finite:
            bad = _core.first_non_finite(x)
            if bad >= 0:
                row, col = divmod(bad, x.shape[1])
                raise ValueError(f"x contains NaN or infinity: x[{row}, {col}] = {x[row, col]}")
        return x

    def _check_y(self, y, n):
        y = np.asarray(y)
        if len(y) != n:
            raise ValueError(f"x has {n} samples but y has {len(y)}")
        if y.ndim == 1 and np.issubdtype(y.dtype, np.integer):
            c = self.output_dim
            if y.min() < 0 or y.max() >= c:
                bad = y[(y < 0) | (y >= c)][0]
                raise ValueError(f"label {bad} is out of range [0, {c}) for a model with {c} outputs")
            self._int_labels = True
            return np.ascontiguousarray(y, dtype=np.int64) if y.dtype != np.int32 else np.ascontiguousarray(y)
        if y.ndim == 1 and np.issubdtype(y.dtype, np.floating) and self.output_dim == 1:
            y = y.reshape(-1, 1)
        if y.ndim == 2 and y.shape[1] == self.output_dim and np.issubdtype(y.dtype, np.number):
            if not np.all(np.isfinite(y)):
                raise ValueError("y contains NaN or infinity")
            self._int_labels = False
            return np.ascontiguousarray(y, dtype=np.float32)
        raise ValueError(
            f"expected y as integer labels of shape ({n},) or targets of shape ({n}, {self.output_dim}), "
            f"got {y.dtype} {y.shape}"
        )

    _int_labels = True
    _init_checked = False

    # -- persistence ----------------------------------------------------------------------

    def get_config(self) -> dict:
        return {
            "class": "Sequential",
            "input_dim": self.input_dim,
            "seed": self.seed if isinstance(self.seed, (int, type(None))) else None,
            "layers": [layer.get_config() for layer in self.layers],
        }

    def save(self, path):
        """Write architecture, initializer names, weights and optimizer state to ``path``,
        atomically (see :func:`fastdense.serialization.save`)."""
        from fastdense import serialization

        serialization.save(self, path)

    def __repr__(self):
        return f"{type(self).__name__}({self.layers!r})"


def MLP(sizes: Sequence[int], activation="relu", kernel_init="glorot_uniform", bias_init="zeros",
        output_init=None, seed=None) -> Sequential:
    """A multi-layer perceptron: ``Dense`` layers of ``sizes[1:]`` on ``sizes[0]`` inputs.

    Args:
        sizes: ``[inputs, hidden..., outputs]``, e.g. ``[784, 100, 10]``.
        activation: hidden-layer activation, ``"relu"`` or ``None``. Default: ``"relu"``.
        kernel_init: initializer for the hidden kernels. Default: ``"glorot_uniform"``.
        bias_init: initializer for every bias. Default: ``"zeros"``.
        output_init: initializer for the output kernel. Default: same as ``kernel_init``.
        seed: initializer seed (each layer gets its own stream).

    >>> model = MLP([784, 256, 10], kernel_init="he_normal", output_init="glorot_uniform", seed=1)
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"Argument `sizes` needs an input and an output size >= 1. Received: sizes={sizes}")
    layers = [Dense(u, activation=activation, kernel_init=kernel_init, bias_init=bias_init)
              for u in sizes[1:-1]]
    layers.append(Dense(sizes[-1], kernel_init=output_init or kernel_init, bias_init=bias_init))
    return Sequential(layers, input_dim=sizes[0], seed=seed)


class _Progress:
    """A tqdm bar per epoch when tqdm is installed and stderr is a terminal; otherwise one
    printed line per epoch."""

    def __init__(self, verbose, epochs, n):
        self.epochs, self.n, self.verbose = epochs, n, verbose
        self.tqdm = None
        if verbose == 1:
            try:
                import sys

                from tqdm.auto import tqdm

                if sys.stderr.isatty():
                    self.tqdm = tqdm
            except ImportError:
                pass
        self.bar = None

    def start_epoch(self, epoch):
        self.epoch, self.t0, self.seen = epoch, time.perf_counter(), 0
        if self.tqdm:
            self.bar = self.tqdm(total=self.n, unit="samples", leave=True,
                                 desc=f"epoch {epoch + 1}/{self.epochs}")

    def update(self, m, loss, acc):
        self.seen += m
        if self.bar is not None:
            self.bar.update(m)
            rate = self.seen / max(time.perf_counter() - self.t0, 1e-9)
            post = {"loss": f"{loss:.4f}", "samples/s": f"{rate:,.0f}"}
            if acc is not None:
                post["acc"] = f"{acc:.4f}"
            self.bar.set_postfix(post, refresh=False)

    def end_epoch(self, metrics):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            return
        parts = [f"{k} {v:.4f}" for k, v in metrics.items() if k != "time"]
        rate = self.n / max(metrics["time"], 1e-9)
        print(f"epoch {self.epoch + 1}/{self.epochs}: " + ", ".join(parts)
              + f", {metrics['time']:.2f} s ({rate:,.0f} samples/s)", flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _progress(verbose, epochs, n):
    return _Progress(verbose, epochs, n) if verbose else None
