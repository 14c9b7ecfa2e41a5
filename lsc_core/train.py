"""One training run: data -> model -> Keras fit -> the store.

`StoreCallback` is the only bridge between Keras and the store: it writes each epoch's
resumable checkpoint (lsc_core.checkpoint) and then the epoch, keeps progress, saves the
best epoch's model, and turns a stop request into a clean stop after the current batch.
A heartbeat thread (`_Pulse`) beats for the whole run, from data loading to the last save.
Every write about the run carries this process's owner token (lsc_core/liveness.py): once
another process has taken the run from it (marked it interrupted as dead, say), the store
refuses the write (NotOwner) and training ends at once, with nothing more written and no
model overwritten. The recipe's callback (lsc_core.recipe) runs before it: it adds each
epoch's learning rate, reduces the rate on plateaus and ends a run early, recording why.
A stop that cuts an epoch while it trains ends the fit with EpochCut, before Keras would
validate that dropped epoch.

A run whose own checkpoint exists (a stopped, interrupted or extended run, see
`Store.resume` / `Store.extend`) continues from it: the model's and the optimizer's
variables are restored, the data stream starts at the next epoch (lsc_core.data) and fit
at `initial_epoch`, so the continued run follows the path of an uninterrupted one.
Nothing here knows about Streamlit.
"""
from __future__ import annotations

import logging
import platform
import threading
import time
from pathlib import Path
from typing import Callable

from . import checkpoint, recipe, schedules
from .artifacts import write_atomically
from .backbones import WeightsUnavailable
from .config import ConfigError, RunConfig, validate

logger = logging.getLogger(__name__)
from . import acceleration, liveness
from .runtime import import_tensorflow, library_versions
from . import tensorboard_events
from .sysmetrics import SystemSampler
from .store import COMPLETED, FAILED, QUEUED, STOPPED, NotOwner, Run, Store

HEARTBEAT_EVERY_S = 1.0  # progress/heartbeat writes and stop checks in the store, this often
STOP_POLL_S = 0.1  # how often this process's own stop event (the dashboard's Stop) is read
BEST_MODEL_FILE = "best.keras"


class ModelSaveError(OSError):
    """The best model could not be written (disk full, no permission); the message says why."""


def save_atomically(model, path: Path, publish: Callable[[Callable[[], None]], None] | None = None) -> None:
    """Write a .keras file so that readers never see a half-written one (artifacts.write_atomically:
    beside `path`, then renamed onto it, by `publish(rename)` when given; a partial file removed
    on any failure). An OSError (disk full, read-only, no permission) becomes a one-line
    ModelSaveError.
    """
    try:
        write_atomically(path, model.save, publish)
    except OSError as exc:
        raise ModelSaveError(f"the best model could not be saved to {path}: {exc.strerror or exc}") from None


class StopRun(Exception):
    """Raised inside a run that was asked to stop before training began."""


class EpochCut(Exception):
    """Ends a fit whose epoch a stop cut during training, before Keras validates it: that epoch
    is dropped anyway, and an epoch's first validation traces the test step first (seconds,
    after the click, for nothing). The callback has done its on_train_end work already."""


def make_callback(store: Store, run_id: int, model_path: Path, total_epochs: int,
                  stop_event: threading.Event | None = None, *, saved_model=None, train_images: int = 0,
                  val_images: int = 0, owner: str | None = None, checkpoint_to: Path | None = None,
                  checkpoint_state: Callable | None = None):
    """The Keras callback that writes a run's progress and epochs to the store.

    It has no batch hooks: the run's heartbeat thread (`_Pulse`, attached while a fit runs)
    reads its progress and looks for stop requests once a second, so training pays nothing
    per batch. `train_images` and `val_images` (per epoch) turn the phases' seconds into
    images per second. Built inside a function so that importing this module does not
    import Keras. `saved_model` (default: the trained model) is the model the best weights
    are saved through. `epoch_offset` is raised between the phases of a fine-tuned run so
    that epoch numbers continue. `owner` (this process's token) guards every write. With
    `checkpoint_to`, each epoch's checkpoint is written there before the epoch reaches the
    store, `checkpoint_state()` adding the model and optimizer it holds and the state beyond
    this callback's (phase, recipe); so a run killed at any point resumes with every stored
    epoch (lsc_core.checkpoint). A stop that cuts an epoch while it trains ends the fit with
    EpochCut (from on_test_begin, before Keras validates that epoch): callers catch it.
    """
    import keras

    class StoreCallback(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epoch_offset = 0
            self.best_accuracy = -1.0
            self.best_weights = None
            self.best_epoch = None  # the epoch number of best_weights, recorded with the saved model
            self._best_saved = True
            self.save_error: str | None = None  # why the best model is not on disk, while it is not
            self.epochs_done = 0  # the last epoch logged, over all phases (a resumed run's start)
            self.stop_asked = False
            # A stop that arrives before an epoch's validation has ended drops that epoch
            # (half trained, or validated on part of the data); the lock orders it against
            # the end of validation.
            self._epoch_cut = False
            self._lock = threading.Lock()
            self._phase = "training"
            self._epoch = 0
            self._epoch_started = self._validation_started = time.time()
            self._train_seconds = self._val_seconds = None
            self._first_step = 0  # optimizer steps before this epoch, to count its batches
            self.pulse: _Pulse | None = None  # the run's heartbeat thread, attached by train_run
            self.lost = False  # the run was taken from this process: write nothing more
            self._own_pulse = False

        # -- heartbeats and stop requests (on the pulse thread) -------------------------------
        def _should_stop(self) -> bool:
            if stop_event is not None and stop_event.is_set():
                return True
            return store.stop_requested(run_id)

        def check_stop_event(self) -> None:
            """Act on this process's stop event (cheap: read every STOP_POLL_S, not only at heartbeats)."""
            if not self.stop_asked and stop_event is not None and stop_event.is_set():
                self.stop()

        def _steps_done(self) -> int:
            return int(self.model.optimizer.iterations.numpy()) - self._first_step

        def progress(self) -> dict:
            """Where training is, for the heartbeat: phase, epoch, batch."""
            with self._lock:
                phase, batch = self._phase, None
                if phase == "training":
                    batch = min(self._steps_done(), self.params.get("steps") or 0)
            return {"phase": phase, "epoch": self._epoch, "epochs": total_epochs, "batch": batch,
                    "batches": self.params.get("steps"), "epoch_started": self._epoch_started}

        def after_beat(self) -> None:
            """On a stop request (this process's or one through the store), end training or validation now."""
            if not self.stop_asked and self._should_stop():
                self.stop()

        def abandon(self) -> None:
            """The run is no longer this process's: end training now, writing and saving nothing more."""
            self.lost = True
            self.stop()

        def stop(self) -> None:
            """End the run after the current batch; the epoch in progress is not kept."""
            with self._lock:
                self.stop_asked = True
                self.model.stop_training = True
                if self._phase in ("training", "validating"):
                    self._epoch_cut = True
                    self.model.stop_evaluating = True

        # -- Keras hooks (on the training thread) -------------------------------------------
        def on_train_begin(self, logs=None):
            if self.pulse is None:  # used on its own, outside train_run: a pulse of its own for this fit
                self.pulse = _Pulse(store, run_id, owner)
                self.pulse.start()
                self._own_pulse = True
            self.pulse.attach(self)

        def on_train_end(self, logs=None):
            self.pulse.detach()
            if self._own_pulse:
                self.pulse.finish()
                self.pulse, self._own_pulse = None, False

        def on_epoch_begin(self, epoch, logs=None):
            with self._lock:
                self._epoch = epoch + 1 + self.epoch_offset
                self._epoch_started = time.time()
                self._first_step = int(self.model.optimizer.iterations.numpy())
                self._phase = "training"
                self._epoch_cut = self.stop_asked
                self._train_seconds = self._val_seconds = None
            self.pulse.wake()

        def on_test_begin(self, logs=None):
            with self._lock:
                if self._phase != "training":
                    return  # an evaluate() outside fit
                cut = self._epoch_cut
                if not cut:  # a stop from now on cuts the validation (stop_evaluating)
                    self._validation_started = time.time()
                    self._train_seconds = self._validation_started - self._epoch_started
                    self._phase = "validating"
            if cut:
                self.on_train_end()  # Keras calls it only when a fit ends without an exception
                raise EpochCut()

        def on_test_end(self, logs=None):
            with self._lock:
                if self._phase == "validating":
                    self._val_seconds = time.time() - self._validation_started
                    self._phase = "logging"

        def on_epoch_end(self, epoch, logs=None):
            with self._lock:
                if self._epoch_cut or self.lost:
                    return
                self._phase = "logging"
                now = time.time()
                train_seconds = self._train_seconds or now - self._epoch_started
            logs = logs or {}
            seconds = now - self._epoch_started
            rates = {"train_images_per_s": _rate(train_images, train_seconds),
                     "val_images_per_s": _rate(val_images, self._val_seconds)}
            accuracy = logs.get("val_accuracy")
            improved = accuracy is not None and accuracy > self.best_accuracy
            if improved:
                self.best_accuracy = float(accuracy)
            # The checkpoint first, then the store, then the best model: a run killed between
            # any two finds the epoch in its checkpoint and writes what is missing on resume.
            self.write_checkpoint(logs, seconds, rates)
            try:
                store.log_epoch(run_id, self._epoch, logs, seconds, **rates, owner=owner)
            except NotOwner:
                self.abandon()
                raise
            tensorboard_events.refresh(store, run_id)
            self.epochs_done = self._epoch
            if improved:
                self.best_weights = self.model.get_weights()
                self.best_epoch = self._epoch
                self._best_saved = False
                # Written at once, not later: the file on disk is the store's best epoch
                # whenever the run dies, at the price of one save per improvement.
                self.save_best()
            if self.stop_asked or self._should_stop():
                self.stop_asked = True
                self.model.stop_training = True

        def write_checkpoint(self, logs: dict, seconds: float, rates: dict) -> None:
            """This epoch's checkpoint; a failed write (a full disk) is one logged line, and the run goes on
            (a resume would then start from the previous epoch's checkpoint, and train this one again)."""
            if checkpoint_to is None:
                return
            state = checkpoint_state()
            try:
                checkpoint.write(checkpoint_to, state.pop("model"), state.pop("optimizer"), {
                    **state, "epoch": self._epoch, "best_accuracy": self.best_accuracy,
                    "logs": {"metrics": _numbers(logs), "seconds": seconds, **rates}}, publish=self._hold_run)
            except NotOwner:  # the file belongs to whoever owns the run now: theirs is not overwritten
                self.abandon()
                raise
            except OSError as exc:
                logger.warning("run %s: the checkpoint of epoch %s could not be written to %s: %s", run_id,
                               self._epoch, checkpoint_to, exc.strerror or exc)

        def save_best(self) -> None:
            """Write the best epoch's model to disk (once per improvement at most) and record
            it, with its epoch number, in the store.

            A failed write (disk full) does not end the run: the best weights stay in
            memory, the next save tries again, and `save_error` says why until one succeeds.
            """
            if self._best_saved or self.best_weights is None or self.lost:
                return
            target = self.model if saved_model is None else saved_model
            current = target.get_weights() if target is self.model else None
            target.set_weights(self.best_weights)
            try:
                save_atomically(target, model_path, publish=self._publish)
            except ModelSaveError as exc:
                self.save_error = str(exc)
                logger.warning("run %s: %s", run_id, exc)
                return
            except NotOwner:
                self.abandon()
                raise
            finally:
                if current is not None:
                    self.model.set_weights(current)
            self._best_saved, self.save_error = True, None

        def _hold_run(self, rename) -> None:
            """Put a file of the run in place only while the run is this process's (NotOwner otherwise)."""
            with store.holding(run_id, owner):
                rename()

        def _publish(self, rename) -> None:
            """Put the saved file in place and record it, in one store transaction that holds while the
            run is this process's: the file belongs to whoever owns the run, so a run taken from this
            process meanwhile never gets its model overwritten (NotOwner, the new file dropped)."""
            with store.holding(run_id, owner):
                rename()
                store.set_model_path(run_id, str(model_path), epoch=self.best_epoch, owner=owner)

    return StoreCallback()


def _numbers(logs: dict) -> dict:
    """An epoch's logs as JSON numbers (Keras may hand out numpy scalars)."""
    return {key: float(value) for key, value in logs.items() if isinstance(value, (int, float)) or
            getattr(value, "shape", None) == ()}


def _rate(images: int, seconds: float | None) -> float | None:
    """Images per second, or None where the phase did not run."""
    return images / seconds if images and seconds else None


class _Pulse(threading.Thread):
    """The run's heartbeat, every HEARTBEAT_EVERY_S from train_run's start to its end, off the
    training thread: data loading, model building, saving and evaluation beat too, so that a
    long silent phase never looks like a dead process.

    While a fit runs the store callback is attached: the beat carries its progress and acts
    on stop requests (this process's stop event read every STOP_POLL_S). A batch hook would
    run Python for every step (competing with training for the GIL and the cores; without
    `async_safe` Keras even waits for each step's results before it); a clock-driven thread
    costs nothing per step and still keeps heartbeats, progress and stops within a second.
    A beat the store refuses (NotOwner: the run was taken from this process) ends the beats
    and the fit; `check()` raises it on the training thread.
    """

    def __init__(self, store: Store, run_id: int, owner: str | None):
        super().__init__(name="lsc-heartbeat", daemon=True)
        self._store, self._run_id, self._owner = store, run_id, owner
        self._done = threading.Event()
        self._soon = threading.Event()
        self._phase = {"phase": "starting"}
        self._callback = None
        self.lost: NotOwner | None = None

    def run(self) -> None:
        next_beat = time.monotonic() + HEARTBEAT_EVERY_S
        while True:
            woken = self._soon.wait(STOP_POLL_S)
            self._soon.clear()
            if self._done.is_set():
                return
            callback = self._callback
            if callback is not None:
                callback.check_stop_event()
            if woken or time.monotonic() >= next_beat:
                next_beat = time.monotonic() + HEARTBEAT_EVERY_S
                try:
                    self._store.heartbeat(self._run_id, callback.progress() if callback else self._phase,
                                          owner=self._owner)
                    if callback is not None:
                        callback.after_beat()
                except NotOwner as exc:
                    self.lost = exc
                    if callback is not None:
                        callback.abandon()
                    return
                except Exception:  # a locked store must not kill heartbeats; the next beat retries
                    logger.exception("heartbeat failed")

    def phase(self, name: str) -> None:
        """Beat now with the phase the run enters outside a fit (e.g. 'loading data')."""
        self._phase = {"phase": name}
        self.wake()

    def attach(self, callback) -> None:
        """While a fit runs, beats carry the store callback's progress and act on stops."""
        self._callback = callback
        self.wake()

    def detach(self) -> None:
        self._callback = None

    def check(self) -> None:
        """NotOwner on the training thread once a beat was refused."""
        if self.lost is not None:
            raise self.lost

    def wake(self) -> None:
        """Beat now (e.g. at an epoch's start, so the page shows the new epoch at once)."""
        self._soon.set()

    def finish(self) -> None:
        self._done.set()
        self._soon.set()
        self.join()


def train_run(store: Store, run_id: int, *, load_data: Callable | None = None,
              stop_event: threading.Event | None = None, verbose: int = 0,
              after_training: Callable | None = None) -> Run:
    """Train the stored run `run_id` to its end, recording everything; returns the run row.

    The run is this process's: claimed or created running by the caller (a queued run is
    claimed here). A run with a checkpoint of its own continues from it (see the module's
    docstring). `load_data` returns a Cifar100 (default: `data.load_cifar100()`), so
    tests and the dashboard can pass data they hold. `after_training(store, run_id, model,
    data, split)` runs on the best model of a completed run (e.g. to store its test-set
    predictions). Never raises for a failing run: the failure is recorded as the run's
    status. A run taken from this process meanwhile (NotOwner) is left as its new owner
    set it: nothing more is written, and its status says what happened.
    """
    owner = liveness.this_process().token
    pulse = _Pulse(store, run_id, owner)
    try:
        run = store.get_run(run_id)
        if run.status == QUEUED:
            store.claim_run(run_id)  # if another process claims it first, the first write says so
        pulse.start()
        if run.config is None:
            raise ConfigError(run.config_error)
        # A model that could not be saved leaves the run's status as it is, with the reason.
        status, save_error = _train(store, run, load_data, stop_event, verbose, after_training, pulse)
        _finish(store, run_id, pulse, status, save_error)
    except NotOwner as exc:
        logger.warning("%s", exc)
    except StopRun:
        _finish(store, run_id, pulse, STOPPED)
    except KeyboardInterrupt:
        _finish(store, run_id, pulse, STOPPED, "interrupted from the keyboard")
        raise
    except ConfigError as exc:
        _finish(store, run_id, pulse, FAILED, f"invalid configuration: {exc}")
    except (WeightsUnavailable, checkpoint.CheckpointError) as exc:  # the config is fine: say what is wrong
        _finish(store, run_id, pulse, FAILED, str(exc))
    except Exception as exc:  # recorded for the person, never lost in a thread
        _finish(store, run_id, pulse, FAILED, f"{type(exc).__name__}: {exc}")
    finally:
        if pulse.is_alive():
            pulse.finish()
    return store.get_run(run_id)


def _finish(store: Store, run_id: int, pulse: _Pulse, status: str, error: str | None = None) -> None:
    """The run's final status, written only while it is still this process's (heartbeats end first,
    so that none lands after it)."""
    if pulse.is_alive():
        pulse.finish()
    try:
        store.finish_run(run_id, status, error, owner=liveness.this_process().token)
    except NotOwner as exc:
        logger.warning("%s", exc)


def own_checkpoint(store: Store, run: Run) -> checkpoint.Checkpoint | None:
    """The checkpoint `run` continues from, or None to start afresh: none on disk, or one left
    by another run of the same id (a store made again beside old artifacts). CheckpointError
    when it is damaged."""
    path = store.checkpoint_path(run.id)
    if not path.is_file():
        return None
    found = checkpoint.read(path, run.id)
    return found if found.state["run_created_at"] == run.created_at else None


def check_checkpoint(store: Store, run_id: int, *, against_model: bool = False) -> checkpoint.Checkpoint | None:
    """The checkpoint run `run_id` would continue from, checked before the run is queued or
    trained again: readable and this run's own, and with `against_model` (seconds: builds the
    model) of the shapes of its model and optimizer. None when it has none (`Store.resume` and
    `Store.extend` then say so); CheckpointError (one line) when it cannot be used."""
    run = store.get_run(run_id)
    path = store.checkpoint_path(run_id)
    if run is None or not path.is_file():
        return None
    found = checkpoint.read(path, run_id)
    if found.state["run_created_at"] != run.created_at:
        raise checkpoint.CheckpointError(f"the checkpoint in {path} is not run {run_id}'s: it was written by an "
                                         f"earlier run {run_id} (created {found.state['run_created_at']})")
    if against_model and run.config is not None:
        _check_fits(run.config, found, run_id)
    return found


def _check_fits(config: RunConfig, found, run_id: int) -> None:
    """CheckpointError unless `found` fits a model and optimizer built from `config`, in the
    phase it was written in (a plain float32 model: the checkpoint leaves out what mixed
    precision adds)."""
    from .model import build_model, compile_model

    import_tensorflow()
    model = build_model(config)
    schedule = schedules.keras_schedule(config, 1)
    for index, (_, _, learning_rate) in enumerate(_phases(config, model, schedule)):
        if index == found.phase:
            compile_model(model, config, learning_rate)
            checkpoint.restore(model, found, run_id, model.optimizer)
            return
    raise checkpoint.CheckpointError(f"the checkpoint of run {run_id} is of fit phase {found.phase}, which its "
                                     "config does not have")


def _train(store, run, load_data, stop_event, verbose, after_training, pulse) -> tuple[str, str | None]:
    """The run's final status, and why its best model is not saved (None when it is)."""
    from . import data as data_module
    from .model import build_model, count_params

    config, run_id = run.config, run.id
    validate(config)
    keras = import_tensorflow()
    resume = own_checkpoint(store, run)
    pulse.phase("loading data")
    dataset = (load_data or data_module.load_cifar100)()
    split = data_module.split_data(dataset, config.label_mode, validation=config.validation,
                                   holdout_fraction=config.holdout_fraction, limit=config.limit,
                                   seed=config.seed)
    pulse.check()
    pulse.phase("building model")
    plan = acceleration.plan_speed(config.speed, config.batch_size)
    keras.utils.set_random_seed(config.seed)
    distribution = acceleration.strategy(plan)
    with distribution.scope(), acceleration.precision(plan):
        model = build_model(config)
    # Under mixed precision, several replicas or data on the device, the best weights are saved
    # through a plain float32 twin on one device, so that a saved model predicts anywhere at
    # full precision (and the model in training never has its weights swapped).
    twin = plan.mixed_precision or plan.replicas > 1 or plan.data_on_device
    saved = build_model(config) if twin else model
    pulse.check()
    store.start_run(run_id, params=count_params(model), versions=library_versions(), device=plan.device,
                    speed=plan.columns(), owner=liveness.this_process().token)
    if store.stop_requested(run_id) or (stop_event is not None and stop_event.is_set()):
        raise StopRun()
    epoch = data_module.epoch_variable()  # outside the strategy's scope: tf.data reads it
    with distribution.scope():
        callback = _fit_phases(store, run, plan, model, saved, split, stop_event, verbose, pulse, resume, epoch)
    pulse.check()  # the run was taken from this process during the fit
    if callback.stop_asked and callback.epochs_done < config.total_epochs:
        return STOPPED, callback.save_error
    if after_training is None:
        return COMPLETED, callback.save_error
    pulse.phase("evaluating")
    # A resumed run whose best epoch came before it resumed has its best weights on disk only.
    best = callback.best_weights if callback.best_weights is not None else _saved_best_weights(store, run_id)
    if best is not None:
        try:
            saved.set_weights(best)
            after_training(store, run_id, saved, dataset, split)
        except Exception as exc:  # the run itself is complete; evaluation can redo this later
            logger.warning("run %s: after-training step failed: %s: %s", run_id, type(exc).__name__, exc)
    return COMPLETED, callback.save_error


def _saved_best_weights(store: Store, run_id: int):
    """The weights of the best model on disk (a resumed run whose best epoch came before it
    resumed), or None when there is none to read."""
    from .model import ModelUnavailable, load_run_model

    try:
        return load_run_model(store.get_run(run_id)).get_weights()
    except ModelUnavailable as exc:
        logger.warning("run %s: %s", run_id, exc)
        return None


def _fit_phases(store, run, plan, model, saved, split, stop_event, verbose, pulse, resume, epoch):
    """Fit each phase of the run with the plan's settings (inside its strategy's scope), from
    `resume` (a Checkpoint) when given; returns the callback, which holds the best weights and
    whether a stop ended the run. `epoch` is the data stream's epoch variable."""
    from . import data as data_module
    from .model import compile_model

    config, run_id = run.config, run.id
    classes = config.num_classes if recipe.soft_labels(config) else None  # one-hot labels
    if plan.data_on_device:
        from .device_data import device_fed

        with acceleration.precision(plan):
            trainer, train_ds, val_ds = device_fed(model, split, config.batch_size, seed=config.seed,
                                                   augment=config.augment, num_classes=classes, epoch=epoch)
    else:
        trainer = model
        train_ds = data_module.make_dataset(split.x_train, split.y_train, config.batch_size, shuffle=True,
                                            seed=config.seed, augment=config.augment, num_classes=classes,
                                            epoch=epoch)
        val_ds = data_module.make_dataset(split.x_val, split.y_val, config.batch_size, shuffle=False,
                                          num_classes=classes)
    model_path = store.artifacts / str(run_id) / BEST_MODEL_FILE
    owner = liveness.this_process().token
    schedule = schedules.keras_schedule(config, schedules.steps_per_epoch(config, len(split.x_train)))
    recipe_callback = recipe.make_callback(config, schedule,
                                           lambda reason: store.set_end_reason(run_id, reason, owner=owner),
                                           history=resume.state["val_accuracies"] if resume else None)
    phase = {"index": 0}
    callback = make_callback(store, run_id, model_path, config.total_epochs, stop_event, saved_model=saved,
                             train_images=len(split.x_train), val_images=len(split.x_val), owner=owner,
                             checkpoint_to=store.checkpoint_path(run_id),
                             checkpoint_state=lambda: {"model": model, "optimizer": trainer.optimizer,
                                                       "phase": phase["index"], "run_created_at": run.created_at,
                                                       "val_accuracies": list(recipe_callback.val_accuracies)})
    callback.pulse = pulse
    start = 0
    if resume is not None:
        checkpoint.restore(model, resume, run_id)
        start = callback.epochs_done = resume.epoch
        callback.best_accuracy = resume.state["best_accuracy"]
        _catch_up(store, run_id, resume, model, callback, owner)
    feed = data_module.epoch_feed(epoch)

    with SystemSampler(lambda sample: store.log_system(run_id, sample, owner=owner)):
        for index, (phase_offset, epochs, learning_rate) in enumerate(_phases(config, model, schedule)):
            if start >= phase_offset + epochs:  # trained before the run resumed
                continue
            compile_model(trainer, config, learning_rate, xla=plan.xla, steps_per_execution=plan.steps_per_execution)
            if resume is not None and resume.phase == index and start > phase_offset:  # mid-phase: its optimizer too
                checkpoint.restore(model, resume, run_id, trainer.optimizer)
            phase["index"], callback.epoch_offset, feed.offset = index, phase_offset, phase_offset
            try:
                # The feed first (it sets the epoch the data serves); the recipe's callback before the
                # store's: it puts the epoch's learning rate into the logs the store writes.
                trainer.fit(train_ds, epochs=epochs, initial_epoch=max(0, start - phase_offset),
                            validation_data=val_ds, callbacks=[feed, recipe_callback, callback],
                            verbose=verbose, shuffle=False)  # the datasets shuffle
            except EpochCut:  # stopped while training: the run ends now, not after a validation pass
                if verbose:
                    print()  # Keras's progress bar of the cut epoch was left unfinished on its line
            finally:  # also when stopped or failing: the best epoch so far is not lost
                pulse.phase("saving")
                callback.save_best()
            if callback.lost or callback.stop_asked and callback.epochs_done < config.total_epochs:
                break
            if recipe_callback.stopped_early:  # a fine-tuning phase would not help either
                break
    return callback


def _catch_up(store, run_id, resume, model, callback, owner) -> None:
    """Bring the store and the best model level with the checkpoint a run resumes from (whose
    weights `model` holds now): later epochs dropped (none should exist: the checkpoint is
    written first), its epoch written if the run died before the store had it, and the best
    model written from it if that epoch is the store's best and the saved model is another
    epoch's (the run died before saving it)."""
    logs = resume.state["logs"]
    store.drop_epochs_after(run_id, resume.epoch, owner=owner)
    if resume.epoch not in {row["epoch"] for row in store.epochs(run_id)}:
        store.log_epoch(run_id, resume.epoch, logs["metrics"], logs["seconds"],
                        train_images_per_s=logs.get("train_images_per_s"),
                        val_images_per_s=logs.get("val_images_per_s"), owner=owner)
    run = store.get_run(run_id)
    callback.best_epoch = run.model_epoch
    if run.best_epoch == resume.epoch and run.model_epoch != resume.epoch:
        callback.best_weights, callback.best_epoch, callback._best_saved = model.get_weights(), resume.epoch, False
        callback.save_best()


def _phases(config: RunConfig, model, schedule):
    """(epoch offset, epochs, learning rate) of each fit: the run's schedule, then a constant
    rate for a fine-tuning phase if the config has one."""
    yield 0, config.epochs, schedule
    backbone = config.backbone
    if backbone is not None and backbone.fine_tune_epochs > 0:
        from .backbones import unfreeze_top

        unfreeze_top(model, backbone.fine_tune_layers)
        yield config.epochs, backbone.fine_tune_epochs, backbone.fine_tune_learning_rate
