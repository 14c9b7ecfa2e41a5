"""Benchmark: what the resumable checkpoint costs each epoch (seconds and megabytes).

For each preset it trains one real epoch through the dashboard's path
(`train.train_run`, which writes the checkpoint at the epoch's end), then rebuilds the
model and optimizer from that checkpoint and times `checkpoint.write` `--repeats` times
into the same folder (median), beside the epoch's own seconds.

    LSC_DATA=../shared/data/cifar100.npz python bench/checkpoint_cost.py --limit 5000
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lsc_core.config import PRESETS, preset  # noqa: E402
from lsc_core.data import load_cifar100  # noqa: E402
from throughput import trained_run  # noqa: E402  (bench/ is this script's folder)


def measure(data, name: str, limit: int, repeats: int) -> dict:
    from lsc_core import checkpoint, schedules
    from lsc_core.model import build_model, compile_model

    config = preset(name, epochs=1, limit=limit)
    with trained_run(data, config, f"{name}: the run") as (store, run_id):
        path = store.checkpoint_path(run_id)
        found = checkpoint.read(path, run_id)
        model = build_model(config)
        # As training compiles it: the tabulated schedule (a float rate would add a variable).
        compile_model(model, config, schedules.keras_schedule(config, schedules.steps_per_epoch(config)))
        checkpoint.restore(model, found, run_id, model.optimizer)
        seconds = []
        for _ in range(repeats):
            started = time.perf_counter()
            checkpoint.write(path, model, model.optimizer, found.state)
            seconds.append(time.perf_counter() - started)
        return {"preset": name, "optimizer": config.optimizer, "params": model.count_params(),
                "megabytes": path.stat().st_size / 1e6, "write_s": statistics.median(seconds),
                "epoch_s": store.epochs(run_id)[0]["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", nargs="+", choices=list(PRESETS), default=["resnet-fast", "seed-part2"])
    parser.add_argument("--limit", type=int, default=5000, help="training images of the epoch (default 5,000)")
    parser.add_argument("--repeats", type=int, default=5, help="timed writes per preset (default 5)")
    parser.add_argument("--data", help="CIFAR-100 path (default: $LSC_DATA)")
    args = parser.parse_args()
    data = load_cifar100(args.data)
    print(f"{'preset':<12} {'optimizer':<9} {'params':>10} {'checkpoint MB':>13} {'write s':>8} {'epoch s':>8} "
          f"{'share':>6}")
    for name in args.preset:
        row = measure(data, name, args.limit, args.repeats)
        print(f"{row['preset']:<12} {row['optimizer']:<9} {row['params']:>10,} {row['megabytes']:>13.1f} "
              f"{row['write_s']:>8.3f} {row['epoch_s']:>8.1f} {row['write_s'] / row['epoch_s']:>6.1%}", flush=True)


if __name__ == "__main__":
    main()
