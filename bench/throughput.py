"""Benchmark: the dashboard's training path against a plain `model.fit` of the same network.

"ours" is `lsc_core.train.train_run`, the path every dashboard and CLI run takes
(input pipeline, store callback with heartbeats and stop checks, epochs and
throughput written to SQLite, best model kept). "plain" is the ten-line script it
replaces: `model.fit` on float32 numpy arrays with Keras's defaults, the same network
and optimizer, the same images. Augmentation is off for both, so both do the same work.

The two alternate (ours, plain, plain, ours, ...), `--rounds` times, each training
`--epochs` epochs; the first epoch of each (tracing, warm-up) is left out and the
medians of the others are compared. An epoch's time is its wall time with its
validation pass, as the store's `seconds`; images/s counts the training phase only.
The ratio printed is plain epoch time / ours (>= 1: ours is at least as fast).

On a GPU it also trains ours with each speed setting switched off in turn
(mixed precision, XLA, steps per execution, data on device), and compares ours with
plain Keras defaults (which use none of them).

    LSC_DATA=../shared/data/cifar100.npz python bench/throughput.py                  # seed-part2, resnet-fast
    python bench/throughput.py --preset seed-part1 --limit 10000 --epochs 3 --separate-processes
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lsc_core.config import PRESETS, SpeedSettings, preset  # noqa: E402
from lsc_core.data import load_cifar100  # noqa: E402

# On a GPU: ours with one speed setting switched off, to show what each is worth.
SETTINGS_OFF = {"no mixed precision": {"mixed_precision": False}, "no XLA": {"xla": False},
                "1 step per execution": {"steps_per_execution": 1}, "data via tf.data": {"data_on_device": False}}


@contextlib.contextmanager
def trained_run(data, config, what: str = "our run"):
    """(store, run id) of `config` trained to its end through the dashboard's path
    (`train.train_run`), in a temporary store that lasts while the context is open;
    SystemExit when the run does not complete."""
    from lsc_core.store import RUNNING, Store
    from lsc_core.train import train_run

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.sqlite")
        run_id = store.create_run(config, status=RUNNING)
        run = train_run(store, run_id, load_data=lambda: data)
        if run.status != "completed":
            raise SystemExit(f"{what} ended {run.status}: {run.error}")
        yield store, run_id


def ours(data, config) -> list[dict]:
    """Per-epoch {seconds, train_ips, val_ips} of a run through the dashboard's path."""
    with trained_run(data, config) as (store, run_id):
        return [{"seconds": e["seconds"], "train_ips": e["train_images_per_s"], "val_ips": e["val_images_per_s"]}
                for e in store.epochs(run_id)]


def plain(data, config) -> list[dict]:
    """The same for a plain model.fit on float32 arrays with Keras's defaults."""
    import keras

    from lsc_core.data import split_data
    from lsc_core.model import build_model, compile_model

    from lsc_core import recipe

    split = split_data(data, config.label_mode, limit=config.limit, seed=config.seed)
    x_train, x_val = split.x_train.astype("float32"), split.x_val.astype("float32")
    y_train, y_val = split.y_train, split.y_val
    if recipe.soft_labels(config):  # label smoothing compiles a loss on one-hot labels
        y_train, y_val = (keras.utils.to_categorical(y, config.num_classes) for y in (y_train, y_val))
    keras.utils.set_random_seed(config.seed)
    model = build_model(config)
    compile_model(model, config)
    rows = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_test_begin(self, logs=None):
            self.validating = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            now = time.perf_counter()
            rows.append({"seconds": now - self.started, "train_ips": len(x_train) / (self.validating - self.started),
                         "val_ips": len(x_val) / (now - self.validating)})

    model.fit(x_train, y_train, batch_size=config.batch_size, epochs=config.epochs,
              validation_data=(x_val, y_val), callbacks=[Timer()], verbose=0)
    return rows


def after_first(rows: list[dict]) -> list[dict]:
    return rows[1:] if len(rows) > 1 else rows


def median(rows: list[dict], key: str) -> float:
    return statistics.median(row[key] for row in rows)


def run_pair(args, config, data) -> dict[str, list[dict]]:
    """Ours and plain alternated for `args.rounds` rounds; epochs after the first of each, pooled."""
    results = {"ours": [], "plain": []}
    order = ["ours", "plain"]
    for round_number in range(args.rounds):
        for path in order if round_number % 2 == 0 else order[::-1]:
            rows = child(args, path, config) if args.separate_processes else PATHS[path](data, config)
            results[path] += after_first(rows)
            print(f"  round {round_number + 1} {path:5s}: " + ", ".join(f"{row['seconds']:.1f} s" for row in rows),
                  flush=True)
    return results


def child(args, path: str, config) -> list[dict]:
    """One path trained in a fresh Python process (no state shared with the other path)."""
    command = [sys.executable, __file__, "--child", path, "--config-json", config.to_json()]
    if args.data:
        command += ["--data", args.data]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"the {path} process failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


PATHS = {"ours": ours, "plain": plain}


def report(name: str, results: dict[str, list[dict]]) -> None:
    o, p = results["ours"], results["plain"]
    print(f"{name}: median of {len(o)} epochs each (first epoch of every run left out)")
    print(f"  {'':6s} {'epoch s':>8} {'train images/s':>15} {'val images/s':>13}")
    for label, rows in (("ours", o), ("plain", p)):
        print(f"  {label:6s} {median(rows, 'seconds'):>8.2f} {median(rows, 'train_ips'):>15.0f} "
              f"{median(rows, 'val_ips'):>13.0f}")
    print(f"  ratio plain/ours epoch time: {median(p, 'seconds') / median(o, 'seconds'):.3f} "
          f"(training images/s ours/plain: {median(o, 'train_ips') / median(p, 'train_ips'):.3f})", flush=True)


def settings_off(args, config, data) -> None:
    """On a GPU: ours with each speed setting switched off in turn, against ours with all on."""
    print("  each speed setting off in turn (ours):")
    for label, change in {"all automatic (on)": {}, **SETTINGS_OFF}.items():
        variant = config.replace(speed=replace(config.speed, **change))
        rows = after_first(ours(data, variant))
        print(f"    {label:22s} {median(rows, 'seconds'):>7.2f} s/epoch {median(rows, 'train_ips'):>9.0f} "
              f"training images/s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", nargs="+", choices=list(PRESETS), default=["seed-part2", "resnet-fast"])
    parser.add_argument("--labels", choices=["coarse", "fine"], default="coarse")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run; the first is left out (default 3)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each path, alternated (default 2)")
    parser.add_argument("--limit", type=int, default=None, help="train on the first N images (default all 50,000)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the preset's")
    parser.add_argument("--separate-processes", action="store_true",
                        help="train each run in its own Python process (the issue's check)")
    parser.add_argument("--data", default=None, help="CIFAR-100 path (default: $LSC_DATA)")
    parser.add_argument("--child", choices=list(PATHS), help=argparse.SUPPRESS)
    parser.add_argument("--config-json", help=argparse.SUPPRESS)
    args = parser.parse_args()
    data = load_cifar100(args.data)
    if args.child:  # one run for a parent in --separate-processes mode: print its epochs as JSON
        from lsc_core.config import RunConfig

        print(json.dumps(PATHS[args.child](data, RunConfig.from_json(args.config_json))))
        return

    from lsc_core.runtime import configure_device

    device = configure_device()
    print(f"data: {data.source}; device: {device}; {args.epochs} epochs x {args.rounds} rounds per path, "
          f"{'separate processes' if args.separate_processes else 'one process'}, alternated")
    for name in args.preset:
        config = preset(name, label_mode=args.labels, epochs=args.epochs, limit=args.limit, augment=())
        if args.batch_size:
            config = config.replace(batch_size=args.batch_size)
        images = min(args.limit or len(data.x_train), len(data.x_train))
        print(f"{name} ({args.labels}, batch {config.batch_size}, {images:,} training images):", flush=True)
        report(name, run_pair(args, config, data))
        if device.startswith("GPU"):
            settings_off(args, config, data)


if __name__ == "__main__":
    main()
