"""A run's resumable checkpoint: one file per run, `artifacts/<id>/checkpoint.npz`
(`Store.checkpoint_path`), rewritten atomically at every epoch's end.

It holds what the next epoch depends on: every variable of the trained model (weights,
BatchNorm statistics, dropout's seed-generator state), every variable of its optimizer
(the step counter included, so a step-based learning-rate schedule continues at its step),
and a JSON state: the epoch and fit phase it ends, the recipe's validation accuracies
(from which reduce-on-plateau and early stopping are pure functions), the best accuracy
so far and the epoch's own logs (so an epoch the store missed can be written from it).
Data order and augmentation need no state of their own: they are functions of the seed
and the epoch (lsc_core.data). A mixed-precision run's loss scale is not kept (it adapts
again within a few steps), so a checkpoint fits a run with or without mixed precision.

The file is a plain .npz of numeric arrays plus one string; it is read with
`allow_pickle=False` only, so a tampered file can fail to load but never run code.
"""
from __future__ import annotations

import json
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .artifacts import write_atomically


FORMAT = 1  # the layout below; a file of another format is refused, not guessed at
STATE_KEY = "state"  # the JSON state, a 0-d unicode array
MODEL_PREFIX, OPTIMIZER_PREFIX = "model_", "optimizer_"  # + 5-digit position of the variable


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (missing, damaged, of another run or model); one line."""


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint as read: the state (epoch, phase, recipe, best accuracy, logs) and the
    arrays of the model's and the optimizer's variables, in their order."""

    state: dict
    model: list[np.ndarray]
    optimizer: list[np.ndarray]

    @property
    def epoch(self) -> int:
        """The last epoch it holds (1-based over the whole run)."""
        return self.state["epoch"]

    @property
    def phase(self) -> int:
        """The fit phase that epoch belongs to (0; 1 for a transfer run's fine-tuning)."""
        return self.state["phase"]


def _inner(optimizer):
    # A mixed-precision run's LossScaleOptimizer wraps the real one: keep only that one's state.
    return getattr(optimizer, "inner_optimizer", optimizer)


def write(path: Path, model, optimizer, state: dict, publish: Callable[[Callable[[], None]], None] | None = None) -> None:
    """Write the checkpoint of `model` (the Keras model trained, not a wrapper that feeds it)
    and its built `optimizer`, with `state` (JSON-able), to `path` atomically: a partial file
    in the same folder, then a rename, so a reader (or a resumed run) sees the old checkpoint
    or the new one, never half of one; `publish(rename)`, when given, makes the rename (inside a
    store transaction that checks the run is still this process's). On any failure the partial
    file is removed; an OSError (a full disk) propagates."""
    import keras

    arrays = {STATE_KEY: np.array(json.dumps({"format": FORMAT, **state}))}
    for prefix, variables in ((MODEL_PREFIX, model.variables), (OPTIMIZER_PREFIX, _inner(optimizer).variables)):
        for position, variable in enumerate(variables):
            arrays[f"{prefix}{position:05d}"] = keras.ops.convert_to_numpy(variable)

    def save(partial: Path) -> None:
        with open(partial, "wb") as file:  # a file object: np.savez would add ".npz" to a name
            np.savez(file, **arrays)  # uncompressed: float weights hardly compress, and it is faster

    write_atomically(path, save, publish)


def read(path: Path, run_id: int) -> Checkpoint:
    """The checkpoint at `path`, checked for shape only (arrays and a readable state);
    CheckpointError with one line otherwise. Never unpickles."""
    where = f"the checkpoint of run {run_id} ({path})"
    if not Path(path).is_file():
        raise CheckpointError(f"{where} does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        state = json.loads(str(arrays.pop(STATE_KEY)))
    except KeyError:
        raise CheckpointError(f"{where} is damaged: it has no state") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split())[:160]
        raise CheckpointError(f"{where} is damaged ({type(exc).__name__}: {reason})") from None
    _check_state(state, where)
    model = [arrays[key] for key in sorted(arrays) if key.startswith(MODEL_PREFIX)]
    optimizer = [arrays[key] for key in sorted(arrays) if key.startswith(OPTIMIZER_PREFIX)]
    if len(model) + len(optimizer) != len(arrays):
        raise CheckpointError(f"{where} is damaged: it holds arrays this program does not write")
    return Checkpoint(state, model, optimizer)


def _check_state(state, where: str) -> None:
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{where} is not a checkpoint of this program (format {FORMAT})")
    for key, kind in (("epoch", int), ("phase", int), ("best_accuracy", (int, float)),
                      ("val_accuracies", list), ("logs", dict), ("run_created_at", str)):
        value = state.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise CheckpointError(f"{where} is damaged: its {key!r} is {value!r}")
    if state["epoch"] < 1 or state["phase"] not in (0, 1):
        raise CheckpointError(f"{where} is damaged: epoch {state['epoch']}, phase {state['phase']}")


def restore(model, checkpoint: Checkpoint, run_id: int, optimizer=None) -> None:
    """Assign the checkpoint's arrays to `model`'s variables and, when `optimizer` is given, to
    the optimizer's, which is built here first on the model's trainable variables, as fit would
    build it. Every count and shape is checked before anything is assigned: CheckpointError
    with one line ("the checkpoint of run 7 does not fit its model: ...") and nothing changed."""
    pairs = _pairs(model.variables, checkpoint.model, "model variables", run_id)
    if optimizer is not None:
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        pairs += _pairs(_inner(optimizer).variables, checkpoint.optimizer, "optimizer variables", run_id)
    for variable, array in pairs:
        variable.assign(array)


def _pairs(variables, arrays, what: str, run_id: int) -> list:
    where = f"the checkpoint of run {run_id} does not fit its model"
    if len(variables) != len(arrays):
        raise CheckpointError(f"{where}: it holds {len(arrays)} {what}, the model has {len(variables)}")
    for variable, array in zip(variables, arrays):
        if tuple(variable.shape) != array.shape:
            raise CheckpointError(f"{where}: {variable.path} is {tuple(variable.shape)}, the checkpoint's "
                                  f"{array.shape}")
    return list(zip(variables, arrays))
