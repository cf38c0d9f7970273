"""The ``fastdense`` command: ``fastdense train``, ``fastdense study`` and ``fastdense info``.

    fastdense train                                  # embedded Fashion-MNIST subset, no network
    fastdense train --dataset fashion-mnist --epochs 5 --save model.npz
    fastdense study --out study-output               # why nets do not learn: the five cases
    fastdense info
"""

from __future__ import annotations

import argparse
import sys
import time


def _cmd_info(args) -> int:
    import fastdense
    from fastdense import _core

    print(f"fastdense {fastdense.__version__}")
    print(f"ISAs compiled:  {', '.join(_core.compiled_isas())}")
    print(f"ISAs supported: {', '.join(_core.supported_isas())}")
    print(f"ISA active:     {_core.active_isa()}")
    openmp = "yes" if _core.has_openmp else "no"
    print(f"threads:        {_core.get_num_threads()} (OpenMP: {openmp})")
    flush = "flushed to zero" if _core.get_flush_denormal() else "kept (IEEE)"
    print(f"denormals:      {flush}")
    print(f"CUDA:           {fastdense.cuda_status()}")
    return 0


def _cmd_train(args) -> int:
    import fastdense
    from fastdense import data

    if args.threads is not None:
        fastdense.set_num_threads(args.threads)
    t0 = time.perf_counter()
    (x_train, y_train), (x_test, y_test) = data.load_dataset(args.dataset, args.data_dir)
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    sizes = [x_train.shape[1], *args.hidden, n_classes]
    model = fastdense.MLP(sizes, kernel_init=args.init, output_init=args.output_init,
                          seed=args.seed)
    model.compile(lr=args.lr, momentum=args.momentum, nesterov=args.nesterov,
                  weight_decay=args.weight_decay)
    print(f"dataset {args.dataset}: {len(x_train)} train / {len(x_test)} test samples "
          f"(loaded in {time.perf_counter() - t0:.1f} s)")
    print(f"model {'-'.join(map(str, sizes))}, init {args.init}"
          + (f" (output {args.output_init})" if args.output_init else "")
          + f", SGD lr {args.lr} momentum {args.momentum}, batch {args.batch_size}, "
          f"{args.epochs} epochs, ISA {fastdense.active_isa()}, "
          f"{fastdense.get_num_threads()} threads, seed {args.seed}")
    history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                        validation_data=(x_test, y_test), seed=args.seed,
                        verbose=args.verbose)
    train_time = sum(history["time"])
    final = model.evaluate(x_test, y_test)
    print(f"test accuracy {final['accuracy']:.4f}, test loss {final['loss']:.4f}, "
          f"train accuracy {history['accuracy'][-1]:.4f}; "
          f"{train_time:.2f} s training, "
          f"{args.epochs * len(x_train) / max(train_time, 1e-9):,.0f} samples/s")
    if args.save:
        model.save(args.save)
        print(f"saved to {args.save}")
    return 0


def _cmd_study(args) -> int:
    import fastdense
    from fastdense.study import run_study

    if args.threads is not None:
        fastdense.set_num_threads(args.threads)
    results = run_study(dataset=args.dataset, outdir=args.out, cases=args.cases, seed=args.seed,
                        verbose=True, data_dir=args.data_dir)
    failed = [r.key for r in results if not r.passed]
    if failed:
        # Exit status 1, so a script or CI job notices that a report did not reproduce.
        print(f"cases not as expected: {', '.join(failed)}")
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fastdense", description="Dense nets on a fast C++ core.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train an MLP classifier and print a summary")
    t.add_argument("--dataset", default="embedded",
                   help="embedded (ships with the package), fashion-mnist or mnist "
                        "(default: embedded)")
    t.add_argument("--data-dir", default=None, help="directory holding the IDX files")
    t.add_argument("--hidden", type=int, nargs="*", default=[100],
                   help="hidden layer sizes (default: 100)")
    t.add_argument("--init", default="he_normal", help="kernel initializer (default: he_normal)")
    t.add_argument("--output-init", default=None,
                   help="output layer initializer (default: same as --init)")
    t.add_argument("--lr", type=float, default=0.05, help="learning rate (default: 0.05)")
    t.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default: 0.9)")
    t.add_argument("--nesterov", action="store_true", help="Nesterov momentum")
    t.add_argument("--weight-decay", type=float, default=0.0, help="L2 weight decay")
    t.add_argument("--epochs", type=int, default=5, help="epochs (default: 5)")
    t.add_argument("--batch-size", type=int, default=100, help="batch size (default: 100)")
    t.add_argument("--threads", type=int, default=None, help="kernel threads (default: all)")
    t.add_argument("--seed", type=int, default=0, help="seed for init and shuffling (default: 0)")
    t.add_argument("--save", default=None, help="save the trained model to this .npz path")
    t.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2],
                   help="0 quiet, 1 progress bar, 2 one line per epoch (default: 1)")
    t.set_defaults(func=_cmd_train)

    s = sub.add_parser("study", help="reproduce five classic reasons a net does not learn, "
                                     "with diagnostics and pictures")
    s.add_argument("--dataset", default="embedded",
                   help="embedded (ships with the package), fashion-mnist or mnist "
                        "(default: embedded)")
    s.add_argument("--data-dir", default=None, help="directory holding the IDX files")
    s.add_argument("--out", default="study-output",
                   help="directory for the table, results.json and pictures "
                        "(default: study-output)")
    s.add_argument("--cases", default=None,
                   help="cases to run, e.g. 1,2,4 (a number runs its group) or 4b,5c "
                        "(default: all)")
    s.add_argument("--seed", type=int, default=0, help="seed for inits and batches (default: 0)")
    s.add_argument("--threads", type=int, default=None, help="kernel threads (default: all)")
    s.set_defaults(func=_cmd_study)

    i = sub.add_parser("info", help="version, ISAs, threads, CUDA availability")
    i.set_defaults(func=_cmd_info)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FloatingPointError) as e:
        print(f"fastdense {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
