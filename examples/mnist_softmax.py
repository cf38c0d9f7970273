"""The classic TensorFlow "MNIST for ML beginners" softmax regression, in fastdense.

A single 784->10 Dense layer with weights and bias initialised to zeros, softmax
cross-entropy, plain SGD with learning rate 0.5, 1000 steps of 100 examples. TensorFlow's
tutorial reports about 0.92 test accuracy on MNIST; on Fashion-MNIST the same recipe gives
about 0.8. Zero init is fine here: with no hidden layer the labels break the symmetry through
the gradient (compare `fastdense study`, where zeros in a hidden layer never learn).

    python examples/mnist_softmax.py                      # MNIST if found, else Fashion-MNIST,
                                                          # else the embedded subset
    python examples/mnist_softmax.py --dataset fashion-mnist
"""

import argparse

import numpy as np

import fastdense
from fastdense import data


def load(name):
    if name != "auto":
        return name, data.load_dataset(name)
    for candidate in ("mnist", "fashion-mnist"):
        try:
            return candidate, data.load_dataset(candidate, download=False)
        except FileNotFoundError:
            continue
    return "embedded", data.load_dataset("embedded")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="auto")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    name, ((x_train, y_train), (x_test, y_test)) = load(args.dataset)
    model = fastdense.Sequential(
        [fastdense.Dense(10, kernel_init="zeros", bias_init="zeros")], input_dim=784
    )
    model.compile(loss="softmax_cross_entropy", lr=0.5)

    rng = np.random.default_rng(args.seed)
    step = 0
    while step < args.steps:
        for xb, yb in data.batches(x_train, y_train, 100, seed=rng, drop_last=True):
            model.train_step(xb, yb)
            step += 1
            if step == args.steps:
                break
    result = model.evaluate(x_test, y_test)
    print(f"{name}: test accuracy {result['accuracy']:.4f} after {args.steps} steps "
          f"(test loss {result['loss']:.4f})")


if __name__ == "__main__":
    main()
