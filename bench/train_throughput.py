"""Benchmark: the dashboard's training path against a plain `model.fit`, same data, same process.

The study's Part 1 experiment (seed-part1, coarse labels, Adam lr 1e-3, batch 64) on
the full real CIFAR-100, first through `lsc_core.train.train_run` (tf.data pipeline,
store callback writing every epoch and heartbeat to SQLite, best-model checkpoints),
then as the study trained it: `model.fit` on in-memory float arrays. Prints each
epoch's test accuracy and seconds and the throughput ratio ours / plain (>= 1 means
our path is at least as fast), on whole wall time: model build, every epoch with its
validation, and (ours) the store writes and the best model saved to disk.

    LSC_DATA=../shared/data/cifar100.npz python bench/train_throughput.py --epochs 3
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lsc_core.config import preset  # noqa: E402
from lsc_core.data import load_cifar100  # noqa: E402
from lsc_core.store import RUNNING, Store  # noqa: E402
from lsc_core.train import train_run  # noqa: E402


def ours(data, config, db_path) -> tuple[float, list[tuple[float, float]]]:
    """Wall seconds in all, and (seconds, test accuracy) per epoch, through the dashboard's path."""
    store = Store(db_path)
    run_id = store.create_run(config, status=RUNNING)
    started = time.perf_counter()
    run = train_run(store, run_id, load_data=lambda: data)
    total = time.perf_counter() - started
    if run["status"] != "completed":
        raise SystemExit(f"our run ended {run['status']}: {run['error']}")
    return total, [(row["seconds"], row["val_accuracy"]) for row in store.epochs(run_id)]


def plain(data, config) -> tuple[float, list[tuple[float, float]]]:
    """The same for a plain model.fit on numpy arrays, as the study trained."""
    import keras

    from lsc_core.model import build_model, compile_model

    started = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    model = build_model(config)
    compile_model(model, config)
    x_train, x_test = data.x_train.astype("float32"), data.x_test.astype("float32")
    y_train, y_test = data.labels("train", config.label_mode), data.labels("test", config.label_mode)

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            timings.append((time.perf_counter() - self.started, logs["val_accuracy"]))

    timings: list[tuple[float, float]] = []
    model.fit(x_train, y_train, batch_size=config.batch_size, epochs=config.epochs,
              validation_data=(x_test, y_test), callbacks=[EpochTimer()], verbose=0)
    return time.perf_counter() - started, timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="train on the first N images only")
    parser.add_argument("--data", default=None, help="CIFAR-100 path (default: $LSC_DATA)")
    parser.add_argument("--plain-first", action="store_true", help="run the plain baseline first")
    args = parser.parse_args()

    data = load_cifar100(args.data)
    config = preset("seed-part1", label_mode="coarse", optimizer="adam", learning_rate=1e-3, batch_size=64,
                    epochs=args.epochs, limit=args.limit)
    images = min(args.limit or len(data.x_train), len(data.x_train))
    print(f"data: {data.source}; seed-part1 coarse, Adam 1e-3, batch 64, {args.epochs} epochs on {images} images; "
          f"{'plain' if args.plain_first else 'ours'} first")
    plain_data = _limited(data, args.limit) if args.limit else data
    with tempfile.TemporaryDirectory() as tmp:
        if args.plain_first:  # the first path in a process also pays TensorFlow's warm-up
            plain_total, plain_epochs = plain(plain_data, config)
            our_total, our_epochs = ours(data, config, Path(tmp) / "bench.sqlite")
        else:
            our_total, our_epochs = ours(data, config, Path(tmp) / "bench.sqlite")
            plain_total, plain_epochs = plain(plain_data, config)

    print(f"{'epoch':>5} {'ours s':>8} {'ours acc':>9} {'plain s':>8} {'plain acc':>10}")
    for epoch, ((s1, a1), (s2, a2)) in enumerate(zip(our_epochs, plain_epochs), start=1):
        print(f"{epoch:>5} {s1:>8.1f} {a1:>9.4f} {s2:>8.1f} {a2:>10.4f}")
    seen = images * args.epochs
    print(f"wall time, model build to trained model saved: ours {our_total:.1f} s, plain {plain_total:.1f} s")
    print(f"throughput ratio ours/plain: {plain_total / our_total:.3f} "
          f"({seen / our_total:.0f} vs {seen / plain_total:.0f} training images/s, validation included)")
    # Single epochs on a shared machine are sometimes far off; the median of each is steadier.
    ours_median = statistics.median(seconds for seconds, _ in our_epochs)
    plain_median = statistics.median(seconds for seconds, _ in plain_epochs)
    print(f"median epoch: ours {ours_median:.1f} s, plain {plain_median:.1f} s, "
          f"ratio ours/plain throughput {plain_median / ours_median:.3f}")


def _limited(data, limit: int):
    """The same first-N training images our path trains on, for the plain baseline."""
    from dataclasses import replace

    return replace(data, x_train=data.x_train[:limit], y_train_fine=data.y_train_fine[:limit],
                   y_train_coarse=data.y_train_coarse[:limit])


if __name__ == "__main__":
    main()
