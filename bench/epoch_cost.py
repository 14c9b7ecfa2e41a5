"""Benchmark: how long a full-data epoch of a network would take, relative to the study's net.

A shared machine's speed drifts while others use it, so each candidate is timed in
the same process as a reference network (default `seed-part2`, Adam, batch 64), in
alternating rounds, on real CIFAR-100 batches through the dashboard's own input
pipeline (flip + crop augmentation on). Prints, per network: forward multiply-adds
per image, training ms per image (median over rounds), its ratio to the reference,
and the seconds of a full epoch (50,000 training images plus validation on the 10,000
test images, whose forward pass costs about a third of a training step per image):
as timed here, and scaled by the ratio to a machine where the reference trains 5,000
images in `--ref-seconds`.

    LSC_DATA=../shared/data/cifar100.npz python bench/epoch_cost.py resnet-fast --rounds 3
    python bench/epoch_cost.py candidate.json --ref-seconds 25   # a RunConfig JSON file too
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

from lsc_core.config import PRESETS, RunConfig, preset  # noqa: E402
from lsc_core.data import load_cifar100, make_dataset  # noqa: E402

TRAIN_IMAGES, TEST_IMAGES = 50_000, 10_000
EVAL_COST = 1 / 3  # a forward pass against a training step (forward + backward), per image


def multiply_adds(model) -> int:
    """Forward multiply-adds per image of a built model's conv and dense layers."""
    total = 0
    for layer in _all_layers(model):
        kind = type(layer).__name__
        if kind == "Conv2D":
            total += layer.kernel.numpy().size * layer.output.shape[1] * layer.output.shape[2]
        elif kind == "SeparableConv2D":
            positions = layer.output.shape[1] * layer.output.shape[2]
            total += (layer.depthwise_kernel.numpy().size + layer.pointwise_kernel.numpy().size) * positions
        elif kind == "Dense":
            total += layer.kernel.numpy().size
    return total


def _all_layers(model):
    return [layer for layer in model.layers if not hasattr(layer, "layers")]


def time_training(config: RunConfig, data, batches: int, warmup: int = 3):
    """Seconds per training image over `batches` real batches, after `warmup` batches; and the model."""
    import keras

    from lsc_core.model import build_model, compile_model

    keras.utils.set_random_seed(config.seed)
    model = build_model(config)
    compile_model(model, config)
    labels = data.labels("train", config.label_mode)
    dataset = make_dataset(data.x_train, labels, config.batch_size, shuffle=True, seed=0, augment=("flip", "crop"))
    model.fit(dataset.take(warmup), verbose=0)
    started = time.perf_counter()
    model.fit(dataset.take(batches), verbose=0)
    return (time.perf_counter() - started) / (batches * config.batch_size), model


def _config(name: str, labels: str) -> RunConfig:
    """A preset by name, or a RunConfig JSON file, with the chosen labels."""
    if name in PRESETS:
        return preset(name, label_mode=labels)
    return RunConfig.from_json(Path(name).read_text()).replace(label_mode=labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("networks", nargs="+",
                        help=f"networks to time: presets ({', '.join(PRESETS)}) or RunConfig JSON files")
    parser.add_argument("--reference", default="seed-part2")
    parser.add_argument("--labels", default="fine", choices=("coarse", "fine"))
    parser.add_argument("--images", type=int, default=6400, help="training images timed per network per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--ref-seconds", type=float, default=25.0,
                        help="the reference's training seconds per 5,000 images on the target machine")
    parser.add_argument("--data", default=None, help="CIFAR-100 path (default: $LSC_DATA)")
    args = parser.parse_args()

    data = load_cifar100(args.data)
    reference = preset(args.reference, label_mode=args.labels)
    candidates = {name: _config(name, args.labels) for name in args.networks}
    timings: dict[str, list[float]] = {name: [] for name in [args.reference, *candidates]}
    mults: dict[str, int] = {}
    for round_number in range(args.rounds):
        order = list(candidates.items()) if round_number % 2 == 0 else list(reversed(candidates.items()))
        for name, config in [(args.reference, reference)] + order:
            per_image, model = time_training(config, data, max(1, args.images // config.batch_size))
            timings[name].append(per_image)
            mults[name] = multiply_adds(model)
            print(f"round {round_number + 1}: {name:<20} {1000 * per_image:6.2f} ms per training image "
                  f"(batch {config.batch_size})", flush=True)
    ref_ms = statistics.median(timings[args.reference]) * 1000
    print(f"\nreference {args.reference}: {ref_ms:.2f} ms per image here; scaled to {args.ref_seconds:g} s "
          f"per 5,000 images ({args.ref_seconds / 5:.2f} ms per image)")
    print(f"{'network':<20} {'M mult-add':>10} {'ms/img':>7} {'ratio':>6} {'epoch s here':>13} "
          f"{'epoch s scaled':>15}")
    images_per_epoch = TRAIN_IMAGES + EVAL_COST * TEST_IMAGES  # in training-image equivalents
    for name, values in timings.items():
        here = statistics.median(values)
        ratio = here * 1000 / ref_ms
        scaled = ratio * args.ref_seconds / 5000 * images_per_epoch
        print(f"{name:<20} {mults[name] / 1e6:>10.1f} {here * 1000:>7.2f} {ratio:>6.3f} "
              f"{here * images_per_epoch:>13.0f} {scaled:>15.0f}")


if __name__ == "__main__":
    main()
