"""The command line: `python -m lsc_core COMMAND`. Thin glue over the library.

It uses the same store as the dashboard, so a run trained here shows up there live.
Errors a person can fix (bad config, missing data, locked store) are one line on
stderr and a non-zero exit status, never a traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import sqlite3
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

from . import augment
from .artifacts import describe_model, model_column, model_out_of_step
from .augment import AUGMENTATIONS
from .backbones import BACKBONES, WEIGHTS
from .config import (LABEL_MODES, MAX_JSON_BYTES, OPTIMIZERS, PRESETS, ConfigError,
                     RunConfig, analyze, preset, validate)
from .evaluate import store_predictions
from .schedules import SCHEDULES
from .shutdown import StopOnSignals
from .store import COMPLETED, Run, Store, StoreError, default_db_path

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CommandError(Exception):
    """A one-line message for the person at the terminal."""


class OneLineParser(argparse.ArgumentParser):
    """argparse with usage mistakes as one `error:` line (the usage is in --help) and exit 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def finite_float(text: str) -> float:
    """An argparse type: a float, refusing nan and inf (float() accepts both)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def whole_number(text: str) -> int:
    """An argparse type: a whole number written in digits (ranges are checked where it is used)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _read_bytes(path: str, what: str) -> bytes:
    """A small input file's bytes; CommandError (one line) if it cannot be read."""
    try:
        with open(path, "rb") as file:
            return file.read(MAX_JSON_BYTES + 1)  # parse_json names the limit when it is over
    except OSError as exc:
        raise CommandError(f"cannot read {what} {path}: {exc.strerror}") from None


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", metavar="PATH", help="run store (default: $LSC_DB or ./runs.sqlite)")


def _add_data(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", metavar="PATH",
                        help="CIFAR-100 as .npz, cifar-100-python directory or .tar.gz "
                             "(default: $LSC_DATA, else the Keras cache, else a download)")


# -- presets ------------------------------------------------------------------------------
def cmd_presets(args) -> int:
    print(f"{'preset':<20} {'params (coarse)':>16} {'params (fine)':>14}  description")
    for name in PRESETS:
        counts = [analyze(preset(name, label_mode=mode)).total_params for mode in LABEL_MODES]
        print(f"{name:<20} {counts[0]:>16,} {counts[1]:>14,}  {PRESETS[name].summary}")
    return EXIT_OK


# -- train --------------------------------------------------------------------------------
def config_from_args(args) -> RunConfig:
    """--config file first, then --preset's layers, then each explicit flag on top."""
    if args.config:
        config = RunConfig.from_json(_read_bytes(args.config, "config"))
    elif args.preset or not getattr(args, "backbone", None):
        config = preset(args.preset or "seed-part2")
    else:
        config = RunConfig()
    if args.config and args.preset:
        config = config.replace(layers=preset(args.preset).layers, preset=args.preset)
    flags = {"label_mode": args.labels, "epochs": args.epochs, "optimizer": args.optimizer,
             "learning_rate": args.lr, "momentum": args.momentum, "batch_size": args.batch_size,
             "limit": args.limit, "seed": args.seed, "validation": args.validation,
             "holdout_fraction": args.holdout_fraction, "name": args.name,
             "schedule": args.schedule, "warmup_epochs": args.warmup_epochs, "weight_decay": args.weight_decay,
             "nesterov": True if args.nesterov else None, "label_smoothing": args.label_smoothing,
             "early_stopping": args.early_stopping, "tta": True if args.tta else None,
             "augment": augment.parse(args.augment) if args.augment is not None else None}
    config = config.replace(**{k: v for k, v in flags.items() if v is not None})
    backbone = backbone_from_args(args, config)
    if backbone is not None:
        config = config.replace(backbone=backbone, layers=(), preset=None)
    return validate(config.replace(speed=speed_from_args(args, config.speed)))


def speed_from_args(args, speed):
    """The config's speed settings with each speed flag given on top (unset flags keep them)."""
    from dataclasses import replace

    changes = {"mixed_precision": args.mixed_precision, "xla": args.xla,
               "steps_per_execution": args.steps_per_execution, "data_on_device": args.data_on_device,
               "replicas": args.replicas}
    return replace(speed, **{k: v for k, v in changes.items() if v is not None})


def _add_speed(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "speed", "Each is automatic unless given: on when TensorFlow sees a GPU; on a CPU all off but 8 steps "
                 "per execution. The run records "
                 "what it trained with; `train` prints it at the end.")
    group.add_argument("--mixed-precision", action=argparse.BooleanOptionalAction,
                       help="compute in float16 with float32 weights and a float32 softmax head")
    group.add_argument("--xla", action=argparse.BooleanOptionalAction, help="compile each training step with XLA")
    group.add_argument("--steps-per-execution", type=whole_number, metavar="N",
                       help="training steps per call from Python (automatic: 16 on a GPU, 8 on a CPU)")
    group.add_argument("--data-on-device", action=argparse.BooleanOptionalAction,
                       help="hold the training set on the GPU, shuffle and augment it there")
    group.add_argument("--replicas", type=whole_number, metavar="N",
                       help="train on N devices at once (MirroredStrategy; automatic: every GPU); "
                            "--batch-size is the total, split evenly over them")


def backbone_from_args(args, config: RunConfig):
    """A BackboneSpec from --backbone and its options (None without --backbone)."""
    if not getattr(args, "backbone", None):
        return None
    from dataclasses import replace

    from .config import BackboneSpec

    spec = config.backbone or BackboneSpec()
    changes = {"name": args.backbone, "weights": args.weights, "image_size": args.image_size,
               "fine_tune_epochs": args.fine_tune_epochs}
    return replace(spec, **{k: v for k, v in changes.items() if v is not None})


def _load_data_or_fail(path):
    from .data import DataError, load_cifar100

    try:
        return load_cifar100(path)
    except DataError as exc:
        raise CommandError(str(exc)) from None


def cmd_train(args) -> int:
    from .store import RUNNING

    if args.resume is not None or args.extend is not None:
        return _continue_run(args)
    config = config_from_args(args)
    data = _load_data_or_fail(args.data)  # before the run exists: no failed run for missing data
    store = Store(args.db)
    run_id = store.create_run(config, status=RUNNING, source="cli")
    print(f"run {run_id}: {config.display_name()}, {config.label_mode} labels, {config.total_epochs} epoch(s), "
          f"data: {data.source}", flush=True)
    return _train_here(store, run_id, data)


# Flags of `train` that --resume and --extend accept: a continued run keeps its own settings.
CONTINUE_FLAGS = {"resume", "extend", "epochs", "data", "db", "func", "command"}


def _continue_run(args) -> int:
    """train --resume ID / --extend ID --epochs N: the run continues here, from its checkpoint."""
    from .checkpoint import CheckpointError
    from .store import RUNNING
    from .train import check_checkpoint

    run_id = args.resume if args.resume is not None else args.extend
    given = sorted(f"--{name.replace('_', '-')}" for name, value in vars(args).items()
                   if name not in CONTINUE_FLAGS and value not in (None, False))
    if given:
        raise CommandError(f"run {run_id} continues with its own settings: drop {', '.join(given)}")
    if args.resume is not None and args.epochs is not None:
        raise CommandError("--resume trains the run's remaining epochs; to train more, extend a completed "
                           "run with --extend ID --epochs N")
    if args.extend is not None and args.epochs is None:
        raise CommandError(f"--extend {run_id} needs --epochs N: how many more epochs to train")
    store = Store(args.db)
    run = _existing_run(store, run_id)
    _wait_for_the_verdict(store, run)
    if run.config is None:
        raise CommandError(f"run {run_id} cannot be continued: its config cannot be read ({run.config_error})")
    data = _load_data_or_fail(args.data)
    try:
        found = check_checkpoint(store, run_id, against_model=True)  # before anything stored changes
    except CheckpointError as exc:
        raise CommandError(str(exc)) from None
    if args.resume is not None:
        store.resume(run_id, status=RUNNING)
    else:
        store.extend(run_id, args.epochs, status=RUNNING)
    run = store.get_run(run_id)
    # No checkpoint: it never finished an epoch (Store.continue_action), so it starts from the beginning.
    where = f"continues after epoch {found.epoch}" if found is not None else "starts again from its first epoch"
    print(f"run {run_id}: {run.name} {where} of {run.epochs_planned}, data: {data.source}", flush=True)
    return _train_here(store, run_id, data)


def _wait_for_the_verdict(store: Store, run) -> None:
    """A run whose trainer was killed a moment ago still has a fresh heartbeat, which counts as
    alive (lsc_core/liveness.py): wait until it is no longer fresh (a few seconds at most) and
    let the store judge it, so `--resume` right after a kill finds it interrupted, not running."""
    from .liveness import FRESH_HEARTBEAT_S
    from .store import RUNNING

    if run.status == RUNNING and run.heartbeat_at is not None:
        time.sleep(min(FRESH_HEARTBEAT_S + 1, max(0.0, run.heartbeat_at + FRESH_HEARTBEAT_S + 0.5 - time.time())))
        store.mark_dead_runs_interrupted()


def _train_here(store: Store, run_id: int, data) -> int:
    """Train run `run_id` in the foreground and report how it ended; the exit status."""
    from .acceleration import describe_speed
    from .store import STOPPED
    from .train import train_run

    stop = threading.Event()
    with StopOnSignals(stop) as signals:  # SIGTERM/SIGINT: stopped after the current batch, model saved
        run = train_run(store, run_id, load_data=lambda: data, verbose=1 if sys.stdout.isatty() else 2,
                        after_training=store_predictions, stop_event=stop)
    if signals.received and run.status == STOPPED:
        print(f"run {run_id} stopped: best so far {_best_text(run)}", flush=True)
        print(f"stopped by {signals.name} {_after_epochs(store, run_id)}; resume with: "
              f"python -m lsc_core train --resume {run_id}", file=sys.stderr)
        return signals.exit_code
    config = run.config
    which = "test" if config.validation == "test" else "hold-out"
    best_text = _best_text(run)
    if run.tta_accuracy is not None:
        best_text += f"; test accuracy with flip averaging (TTA) {run.tta_accuracy:.4f}"
    print(f"run {run_id} {run.status}: best {which} accuracy {best_text}")
    if run.end_reason:
        print(f"run {run_id} ended before its last epoch: {run.end_reason}")
    if run.device:
        print(f"trained on {run.device}: {describe_speed(run.speed, config.batch_size)}")
    if run.error:
        print(f"error: {run.error}", file=sys.stderr)
    return EXIT_OK if run.status == COMPLETED and not run.error else EXIT_FAILED  # e.g. model not saved


def _best_text(run: Run) -> str:
    best = run.best_val_accuracy
    return f"{best:.4f} at epoch {run.best_epoch}" if best is not None else "none"


def _after_epochs(store: Store, run_id: int) -> str:
    """'after epoch N' (the last one stored), or 'before its first epoch ended'."""
    epochs = store.epochs(run_id)
    return f"after epoch {epochs[-1]['epoch']}" if epochs else "before its first epoch ended"


# -- runs ---------------------------------------------------------------------------------
def _duration(run: Run) -> str:
    if not run.started_at:
        return ""
    end = datetime.fromisoformat(run.finished_at) if run.finished_at else datetime.now().astimezone()
    seconds = int((end - datetime.fromisoformat(run.started_at)).total_seconds())
    return f"{seconds // 60}m{seconds % 60:02d}s"


def _printable(name: str) -> str:
    """A stored run name for the terminal: as it is, or quoted when it holds control characters
    (a name from elsewhere)."""
    return name if name.isprintable() else repr(name)


def cmd_runs(args) -> int:
    store = Store(args.db)
    runs = store.list_runs(tag=args.tag, archived=None if args.all else args.archived)
    if not runs:
        which = " with tag " + repr(args.tag) if args.tag else ""
        print(f"no {'archived ' if args.archived else ''}runs{which} in {store.path}")
        return EXIT_OK
    counts = store.epoch_counts()
    header = f"{'id':>4}  {'name':<24} {'status':<11} {'labels':<6} {'params':>11} {'best acc':>8} " \
             f"{'@epoch':>6} {'model':>5} {'epochs':>7} {'time':>8}  created"
    print(header)
    for run in runs:
        best = f"{run.best_val_accuracy:.4f}" if run.best_val_accuracy is not None else "-"
        params = f"{run.params:,}" if run.params else "-"
        epochs = f"{counts.get(run.id, 0)}/{run.epochs_planned or '?'}"
        name = _printable(run.name)
        print(f"{run.id:>4}  {name[:24]:<24} {run.status:<11} {run.label_mode:<6} {params:>11} "
              f"{best:>8} {run.best_epoch or '-':>6} {model_column(run):>5} {epochs:>7} {_duration(run):>8}  "
              f"{run.created_at}"
              + (f"  [{', '.join(run.tags)}]" if run.tags else "") + ("  (archived)" if run.archived else ""))
    for run in runs:
        if run.end_reason:
            print(f"run {run.id}: {run.end_reason}")
        if model_out_of_step(run):
            print(f"run {run.id}: {describe_model(run)}")
    return EXIT_OK


# -- keeping runs in order ----------------------------------------------------------------
def _existing_run(store: Store, run_id: int) -> Run:
    run = store.get_run(run_id)
    if run is None:
        raise CommandError(f"no run {run_id} in {store.path}")
    return run


def cmd_tag(args) -> int:
    store = Store(args.db)
    tags = set(_existing_run(store, args.run).tags)
    tags = tags - set(args.tags) if args.remove else tags | set(args.tags)
    now = store.set_tags(args.run, tags)
    print(f"run {args.run} tags: {', '.join(now) or '(none)'}")
    return EXIT_OK


def cmd_note(args) -> int:
    store = Store(args.db)
    _existing_run(store, args.run)
    store.set_note(args.run, "" if args.clear else " ".join(args.text))
    print(f"run {args.run}: note {'cleared' if args.clear or not ' '.join(args.text).strip() else 'saved'}")
    return EXIT_OK


def cmd_archive(args) -> int:
    store = Store(args.db)
    _existing_run(store, args.run)
    store.set_archived(args.run, not args.undo)
    print(f"run {args.run} {'unarchived' if args.undo else 'archived (see it with: runs --archived)'}")
    return EXIT_OK


def cmd_delete(args) -> int:
    store = Store(args.db)
    run = _existing_run(store, args.run)
    if not args.yes:
        if not sys.stdin.isatty():
            raise CommandError(f"deleting run {args.run} cannot be undone: add --yes to confirm")
        answer = input(f"Delete run {args.run} ({run.name}, {run.status}), its epochs, predictions and "
                       f"artifacts? This cannot be undone. [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return EXIT_FAILED
    store.delete_run(args.run)
    print(f"run {args.run} deleted")
    return EXIT_OK


# -- predict ------------------------------------------------------------------------------
@contextlib.contextmanager
def _native_stderr_silenced():
    """TensorFlow's C++ start-up lines (oneDNN, CUDA probing) bypass TF_CPP_MIN_LOG_LEVEL and
    write to file descriptor 2; hide them so stderr holds only our one line per bad file.
    Python exceptions still propagate and are reported after the descriptor is restored."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def cmd_predict(args) -> int:
    """Top-k labels per image; a bad file is one stderr line and makes the exit status 1."""
    from .predict import classify, format_prediction, load_run_model, read_files

    if args.top < 1:
        raise CommandError(f"--top must be at least 1, not {args.top}")
    if args.explain and not Path(args.explain).resolve().parent.is_dir():
        raise CommandError(f"--explain: the folder {Path(args.explain).resolve().parent} does not exist")
    uploads = read_files(args.images)  # before the model: a typo'd path fails in milliseconds
    store = Store(args.db)
    try:
        with _native_stderr_silenced():
            run, model = load_run_model(store, args.run)
            predictions = classify(model, run.label_mode, uploads, args.top, tta=args.tta)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    print(f"run {run.id} ({_printable(run.name)}): {describe_model(run)}")
    explain_to = _explainer_and_paths(model, uploads, args.explain) if args.explain else None
    for index, (upload, prediction) in enumerate(zip(uploads, predictions)):
        if prediction is None:
            print(f"error: {upload.error}", file=sys.stderr)
            continue
        print(f"{upload.name}  [{upload.image.describe()}]")
        print("\n".join(format_prediction(prediction)), flush=True)
        if explain_to is not None:
            _write_explanation(explain_to[0], upload, run.label_mode, explain_to[1][index])
    return EXIT_OK if all(u.image is not None for u in uploads) else EXIT_FAILED


def _explainer_and_paths(model, uploads, out):
    """Grad-CAM for `predict --explain`: (explainer, output path per upload); a network without a
    convolution is a CommandError."""
    from .explain import Explainer, NoFeatureMap, explain_paths

    try:
        with _native_stderr_silenced():
            explainer = Explainer(model)
    except NoFeatureMap as exc:
        raise CommandError(f"--explain: {exc}") from None
    return explainer, explain_paths(out, [u.name for u in uploads])


def _write_explanation(explainer, upload, label_mode: str, path) -> None:
    from .explain import explain_upload, save_png

    with _native_stderr_silenced():
        explained = explain_upload(explainer, upload.image, label_mode)
    try:
        save_png(explained.on_upload, path)
    except OSError as exc:
        raise CommandError(f"--explain: cannot write {path}: {exc.strerror or exc}") from None
    print(f"  explain {path}: Grad-CAM of '{explained.class_name}' ({explained.probability:.1%}) on the centred "
          f"square the network sees, from {explained.layer.describe()}", flush=True)


# -- export -------------------------------------------------------------------------------
def cmd_export(args) -> int:
    """A run's best model as SavedModel, TFLite or ONNX, checked against Keras before it is kept."""
    from .export import ExportError, check_images, export_model
    from .predict import load_run_model

    store = Store(args.db)
    data = _load_data_or_fail(args.data)
    try:
        with _native_stderr_silenced():
            run, model = load_run_model(store, args.run)
            check = export_model(model, args.format, args.out, check_images(data))
    except (ValueError, ExportError) as exc:
        raise CommandError(str(exc)) from None
    print(f"run {args.run} ({_printable(run.name)}) exported to {args.out}: {describe_model(run)}")
    print(check.describe())
    return EXIT_OK


# -- export-run / import-run -----------------------------------------------------------------
def cmd_export_run(args) -> int:
    from .archive import ArchiveError, export_run

    store = Store(args.db)
    try:
        out = export_run(store, args.run, args.out)
    except ArchiveError as exc:
        raise CommandError(str(exc)) from None
    print(f"run {args.run} written to {out} ({out.stat().st_size:,} bytes)")
    problem = store.get_run(args.run).model_problem
    if problem:  # the archive holds everything else; the file at that path was not read
        print(f"run {args.run}: {problem}; the archive has no model")
    return EXIT_OK


def cmd_import_run(args) -> int:
    from .archive import ArchiveError, import_run

    store = Store(args.db)
    try:
        run_id = import_run(store, args.archive)
    except ArchiveError as exc:
        raise CommandError(str(exc)) from None
    run = store.get_run(run_id)
    print(f"imported {args.archive} as run {run_id} ({run.name}, {run.status}) into {store.path}")
    return EXIT_OK


# -- tensorboard-export -------------------------------------------------------------------
def cmd_tensorboard_export(args) -> int:
    """Event files for runs trained before runs wrote their own (or to write them afresh)."""
    from .tensorboard_events import write_all, write_run_events

    store = Store(args.db)
    if args.run is not None:
        if write_run_events(store, args.run) is None:
            raise CommandError(f"no run {args.run} in {store.path}")
        written = 1
    else:
        written = len(write_all(store))
    print(f"wrote TensorBoard event files for {written} run(s); view them with:")
    print(f"tensorboard --logdir {store.artifacts}")
    return EXIT_OK


# -- search -------------------------------------------------------------------------------
def cmd_search(args) -> int:
    """Train a search's trials here, one after another; print the results and the best trial."""
    from . import search

    store = Store(args.db)
    if args.resume:
        if store.get_search(args.resume) is None:
            raise CommandError(f"no search {args.resume} in {store.path}")
        search_id, spec = args.resume, search.get_spec(store, args.resume)
    else:
        spec = search.check_spec(_search_spec_from_args(args, search))
    data = _load_data_or_fail(args.data)
    if not args.resume:
        search_id = search.create_search(store, spec, args.name)
    elif store.get_search(search_id)["status"] == search.SEARCH_STOPPED:  # e.g. by Ctrl-C
        search.reopen_search(store, search_id)
    print(f"search {search_id}: {spec.strategy}, {len(search.plan_values(spec))} trial(s) of {spec.epochs} "
          f"epoch(s), {spec.label_mode} labels, data: {data.source}", flush=True)

    current = {"trial": None}  # the trial being trained, for Ctrl-C

    def announce(number, total, config):
        current["trial"] = config.name
        values = ", ".join(f"{p.name}={search.param_value(p, config)}" for p in spec.space.params)
        print(f"trial {number}/{total} ({config.name}): {values}", flush=True)

    stop = threading.Event()
    try:  # SIGTERM/SIGINT: the trial in training stops after its batch (its model saved), no other starts
        with StopOnSignals(stop) as signals:
            search.run_search(store, search_id, load_data=lambda: data, on_trial=announce, stop_event=stop,
                              verbose=1 if sys.stdout.isatty() else 2, after_training=store_predictions)
    except KeyboardInterrupt:  # a second signal while stopping; the first is in signals.received
        pass
    if signals.received:
        # Left 'running', the next dashboard start would queue all the remaining trials unasked.
        search.interrupt_search(store, search_id, current["trial"])
        print(f"\nsearch {search_id} stopped. Continue it (the interrupted trial runs again) with: "
              f"python -m lsc_core search --resume {search_id}", file=sys.stderr, flush=True)
        return signals.exit_code
    rows = search.results_rows(store, search_id)
    _print_table(rows)
    best = search.best_trial(store, search_id)
    if best is None:
        print(f"search {search_id}: no trial finished an epoch")
        return EXIT_FAILED
    print(f"best: trial {best.name} (run {best.id}), test accuracy {best.best_val_accuracy:.4f} "
          f"at epoch {best.best_epoch}")
    return EXIT_OK


def _search_spec_from_args(args, search):
    if args.space:
        space = search.SearchSpace.from_json(_read_bytes(args.space, "search space"))
    else:
        space = search.study_space()
    trials = args.trials if args.trials is not None else (10 if args.strategy == "random" else None)
    return search.SearchSpec(space, strategy=args.strategy, trials=trials, epochs=args.epochs,
                             label_mode=args.labels, limit=args.limit, seed=args.seed)


def _print_table(rows: list[dict]) -> None:
    """Rows of dicts as aligned text columns (accuracies to 4 places)."""
    if not rows:
        return
    cells = [[_cell(row[key]) for key in rows[0]] for row in rows]
    widths = [max(len(str(key)), *(len(line[i]) for line in cells)) for i, key in enumerate(rows[0])]
    print("  ".join(str(key).rjust(width) for key, width in zip(rows[0], widths)))
    for line in cells:
        print("  ".join(cell.rjust(width) for cell, width in zip(line, widths)))


def _cell(value) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


# -- study --------------------------------------------------------------------------------
def cmd_study(args) -> int:
    """Queue the study's experiments (each distinct config once); with --run, train them here."""
    from . import study

    if args.stop is not None or args.remove is not None:
        return _stop_or_remove_suite(args, study)
    if args.epochs_scale <= 0:
        raise CommandError(f"--epochs-scale must be above 0, not {args.epochs_scale}")
    data = _load_data_or_fail(args.data) if args.run else None
    store = Store(args.db)
    suite_id, new = study.queue_suite(store, epochs_scale=args.epochs_scale, limit=args.limit)
    suite = next(s for s in study.suites(store) if s["id"] == suite_id)
    print(f"suite {suite_id} {'queued' if new else 'was already queued'}: {len(set(suite['runs'].values()))} "
          f"runs and search {suite['search_id']} (epochs x{args.epochs_scale}, limit {args.limit or 'none'})")
    if args.run:
        def announce(number, total, run):
            print(f"run {number}/{total}: {run.name} (run {run.id})", flush=True)

        stop = threading.Event()
        with StopOnSignals(stop) as signals:  # SIGTERM/SIGINT: the run in training stops cleanly, no other starts
            study.run_suite(store, suite, load_data=lambda: data, on_run=announce, stop_event=stop,
                            verbose=1 if sys.stdout.isatty() else 2, after_training=store_predictions)
        if signals.received:
            print(f"suite {suite_id} stopped by {signals.name}; the run in training ended `stopped`, its best "
                  "model saved; the rest stay queued", file=sys.stderr)
            return signals.exit_code
    _print_table([{k: row[k] for k in ("part", "experiment", "study accuracy", "our accuracy", "status", "run")}
                  for row in study.study_table(store, suite)])
    return EXIT_OK


def _stop_or_remove_suite(args, study) -> int:
    """study --stop ID / --remove ID: the suite's queued runs and trials dropped, its running run
    asked to stop (whichever process trains it); --remove also forgets the suite (runs stay)."""
    store = Store(args.db)
    suite_id = args.stop if args.stop is not None else args.remove
    suite = study.get_suite(store, suite_id)
    if suite is None:
        raise CommandError(f"no suite {suite_id} in {store.path}")
    if args.remove is not None:
        stopped = study.remove_suite(store, suite)
        print(f"suite {suite_id} removed ({stopped} run(s) and trial(s) stopped); its runs stay in the store")
    else:
        stopped = study.stop_suite(store, suite)
        print(f"suite {suite_id} stopped: {stopped} run(s) and trial(s) stopped; what they trained is kept")
    return EXIT_OK


# -- the parser ---------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m lsc_core",
        description="LSC dashboard command line: train and inspect CIFAR-100 networks. "
                    "Uses the same run store as the dashboard.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("presets", help="preset networks with their parameter counts")
    _add_db(p)
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("train", help="train one run in the foreground (or continue one: --resume, --extend)",
                       description="Train one run in the foreground with a progress bar; prints the run id "
                                   "and the best test accuracy. Settings: --config JSON first, then --preset's "
                                   "layers, then each flag given. Every epoch writes a checkpoint, so a run "
                                   "that was stopped or interrupted continues from its last epoch with --resume "
                                   "ID, and a completed run trains N more epochs with --extend ID --epochs N; "
                                   "both keep the run's epochs and settings and follow the path an uninterrupted "
                                   "run takes (same seed, data order and remaining schedule; extending stretches "
                                   "a cosine or one-cycle schedule over the new length). SIGTERM or Ctrl-C "
                                   "(SIGINT) stops the run after its current batch: status 'stopped', its best "
                                   "model saved, exit status 143 or 130 (a second signal exits at once).")
    continued = p.add_mutually_exclusive_group()
    continued.add_argument("--resume", type=whole_number, metavar="ID",
                           help="continue the stopped, interrupted or failed run ID from its last stored epoch")
    continued.add_argument("--extend", type=whole_number, metavar="ID",
                           help="train the completed run ID --epochs N more epochs")
    p.add_argument("--preset", choices=list(PRESETS), help="network to start from (default: seed-part2)")
    p.add_argument("--config", metavar="FILE.json", help="a RunConfig as JSON (as stored with every run)")
    p.add_argument("--labels", choices=LABEL_MODES, help="20 superclasses or 100 classes (default coarse)")
    p.add_argument("--epochs", type=whole_number, help="epochs to train (default 10); with --extend, how many more")
    p.add_argument("--optimizer", choices=OPTIMIZERS, help="default adam")
    p.add_argument("--lr", type=finite_float, help="learning rate (default 1e-3)")
    p.add_argument("--momentum", type=finite_float, help="SGD momentum (default 0)")
    p.add_argument("--nesterov", action="store_true", help="Nesterov momentum (SGD only)")
    p.add_argument("--weight-decay", type=finite_float, metavar="X",
                   help="decoupled weight decay per step, times the learning rate, on kernels (default 0)")
    p.add_argument("--schedule", metavar="{" + ",".join(SCHEDULES) + "}",
                   help="learning-rate schedule (default constant, the study's)")
    p.add_argument("--warmup-epochs", type=whole_number, metavar="N",
                   help="linear warm-up to --lr over N epochs (one-cycle: its rise); shorter than the run")
    p.add_argument("--label-smoothing", type=finite_float, metavar="X",
                   help="share of each target spread over all classes, in [0, 1) (default 0)")
    p.add_argument("--early-stopping", type=whole_number, metavar="PATIENCE",
                   help="end the run after PATIENCE epochs without a better validation accuracy (default off)")
    p.add_argument("--batch-size", type=whole_number, help="images per step (default 64)")
    p.add_argument("--limit", type=whole_number, help="train on the first N training images")
    p.add_argument("--seed", type=whole_number, help="random seed (default 0)")
    p.add_argument("--validation", choices=["test", "holdout"],
                   help="validate on the test set (default, as the study) or a stratified hold-out")
    p.add_argument("--holdout-fraction", type=finite_float, help="hold-out share of the training set (default 0.1)")
    p.add_argument("--augment", metavar="OPS",
                   help="training-image augmentations, a comma list of " + ",".join(AUGMENTATIONS)
                        + "; 'none'; 'standard' = flip,crop (default none)")
    p.add_argument("--tta", action="store_true",
                   help="after training, also report test accuracy with flip averaging (test-time augmentation)")
    p.add_argument("--name", help="run name (default: preset name and run id)")
    p.add_argument("--backbone", choices=list(BACKBONES),
                   help="transfer learning from a keras.applications network instead of a custom stack")
    p.add_argument("--weights", choices=WEIGHTS, help="backbone weights (default imagenet)")
    p.add_argument("--image-size", type=whole_number, help="upscale images to NxN for the backbone")
    p.add_argument("--fine-tune-epochs", type=whole_number, help="epochs with the top backbone layers unfrozen")
    _add_speed(p)
    _add_data(p)
    _add_db(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("runs", help="a table of runs in the store (archived ones hidden)",
                       description="A table of the store's runs. 'model' is the epoch its saved model is "
                                   "(-: none; ?: saved before the epoch was recorded; !: its stored path was "
                                   "refused). A run whose saved model is not its best epoch, or whose model path "
                                   "was refused, gets a line under the table saying so.")
    p.add_argument("--tag", metavar="T", help="only runs tagged T")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--archived", action="store_true", help="only archived runs")
    shown.add_argument("--all", action="store_true", help="archived runs too")
    _add_db(p)
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("tag", help="add tags to a run (or remove them with --remove)")
    p.add_argument("run", type=int, metavar="ID", help="run id (see `runs`)")
    p.add_argument("tags", nargs="+", metavar="TAG", help="tags: 1-40 characters, no commas")
    p.add_argument("--remove", action="store_true", help="remove these tags instead")
    _add_db(p)
    p.set_defaults(func=cmd_tag)

    p = sub.add_parser("note", help="write a run's note (shown on the Runs page as text)")
    p.add_argument("run", type=int, metavar="ID", help="run id (see `runs`)")
    p.add_argument("text", nargs="*", metavar="TEXT", help="the note (replaces the old one)")
    p.add_argument("--clear", action="store_true", help="remove the note")
    _add_db(p)
    p.set_defaults(func=cmd_note)

    p = sub.add_parser("archive", help="hide a run from run lists (or show it again with --undo)",
                       description="Archived runs keep everything; `runs` and the Runs page hide them until "
                                   "asked (`runs --archived`, the page's 'Archived' filter).")
    p.add_argument("run", type=int, metavar="ID", help="run id (see `runs`)")
    p.add_argument("--undo", action="store_true", help="unarchive it")
    _add_db(p)
    p.set_defaults(func=cmd_archive)

    p = sub.add_parser("delete", help="delete a run with its epochs, predictions and artifacts",
                       description="Delete a run for good: its record, epochs, predictions, system metrics, study "
                                   "links and artifacts folder. A running run must be stopped first. Asks for "
                                   "confirmation at a terminal; elsewhere give --yes.")
    p.add_argument("run", type=int, metavar="ID", help="run id (see `runs`)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    _add_db(p)
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser("predict", help="top-k fine and coarse labels of image files under a run's model",
                       description="Predict image files (PNG, JPEG, WebP, BMP, GIF, TIFF, ...) with a run's best "
                                   "model; the first line says which epoch that model is. A model path "
                                   "outside the store's artifacts folder is never used (one error line). "
                                   "A fine run also gives coarse labels, summed from its fine "
                                   "probabilities. A file that is not a usable image gets one line on stderr "
                                   "and the exit status 1; the others are still predicted.")
    p.add_argument("--run", type=whole_number, required=True, metavar="ID", help="run id (see `runs`)")
    p.add_argument("--top", type=whole_number, default=5, metavar="K", help="labels per level (default 5)")
    p.add_argument("--explain", metavar="OUT.png",
                   help="also write a Grad-CAM heatmap of the top class over the centred square of the image "
                        "the network sees (red: where its evidence is). With several images, one file each: "
                        "OUT-<image name>.png beside OUT.png (e.g. --explain cam.png photo.jpg scan.tiff writes "
                        "cam-photo.png and cam-scan.png)")
    p.add_argument("--tta", action="store_true",
                   help="average each image's probabilities with its mirror image's (test-time augmentation)")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    _add_db(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", help="a run's best model as SavedModel, TFLite or ONNX",
                       description="Export a run's best model for another runtime. The file is loaded back by "
                                   "its own runtime (TensorFlow, the LiteRT interpreter, ONNX Runtime) and must "
                                   "give the Keras model's top-1 class on 100 test images, with probabilities "
                                   "within 1e-4; otherwise it is removed and the reason printed. "
                                   "savedmodel writes a folder, tflite and onnx a file. The output line says "
                                   "which epoch the exported model is.")
    p.add_argument("--run", type=whole_number, required=True, metavar="ID", help="run id (see `runs`)")
    p.add_argument("--format", required=True, choices=["savedmodel", "tflite", "onnx"], help="output format")
    p.add_argument("out", metavar="OUT", help="output path (must not exist)")
    _add_data(p)
    _add_db(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("export-run", help="one run as a .zip (config, epochs, notes, tags, predictions, model)",
                       description="Write a run to a zip archive to share it: its config and provenance, "
                                   "epochs, system metrics, notes and tags, stored test-set predictions and best "
                                   "model. `import-run` adds it to another store. A run whose stored model path "
                                   "lies outside the store's artifacts folder is archived without its model "
                                   "(the file is not read), and a line says so.")
    p.add_argument("run", type=int, metavar="ID", help="run id (see `runs`)")
    p.add_argument("out", metavar="OUT.zip", help="archive to write (must not exist)")
    _add_db(p)
    p.set_defaults(func=cmd_export_run)

    p = sub.add_parser("import-run", help="add a run archive made by export-run to this store",
                       description="Add the run in an archive made by `export-run` to this store, under a new "
                                   "id. The archive is checked before anything is stored; nothing in it is "
                                   "executed or unpickled. Its model goes into this store's own artifacts "
                                   "folder, with the epoch it is; this is also how runs of a store from before "
                                   "stores had their own folders move into one.")
    p.add_argument("archive", metavar="ARCHIVE.zip", help="archive written by export-run")
    _add_db(p)
    p.set_defaults(func=cmd_import_run)

    p = sub.add_parser("tensorboard-export", help="TensorBoard event files for the store's runs",
                       description="Write TensorBoard event files from the store for every run with epochs (or "
                                   "one run): train/ and validation/ scalars of every stored epoch column, and "
                                   "the hyperparameters of search trials. Runs write them while training; this "
                                   "is for runs made before, and rewrites the files to equal the store.")
    p.add_argument("--run", type=int, metavar="ID", help="only this run")
    _add_db(p)
    p.set_defaults(func=cmd_tensorboard_export)

    p = sub.add_parser("search", help="a hyperparameter search, trials trained here one after another",
                       description="Random (seeded) or grid search over a space (default: the study's conv "
                                   "filters and dense units over seed-part2). Each trial is an ordinary run "
                                   "named search<ID>-trial<N>. Prints a results table and the best trial. "
                                   "--resume ID continues a search: finished trials are kept, the rest run. "
                                   "SIGTERM or Ctrl-C stops the trial in training after its batch and the "
                                   "search (exit 143 or 130); --resume trains that trial again.")
    p.add_argument("--trials", type=whole_number, help="trials to run (random: default 10; grid: default all points)")
    p.add_argument("--epochs", type=whole_number, default=5, help="epochs per trial (default 5)")
    p.add_argument("--labels", choices=LABEL_MODES, default="coarse", help="default coarse")
    p.add_argument("--limit", type=whole_number, help="train each trial on the first N training images")
    p.add_argument("--seed", type=whole_number, default=0, help="seed of the random draw (default 0)")
    p.add_argument("--space", metavar="FILE.json", help="search space as JSON (see lsc_core/search.py)")
    p.add_argument("--strategy", choices=["random", "grid"], default="random", help="default random")
    p.add_argument("--resume", type=whole_number, metavar="ID", help="continue search ID instead of starting one")
    p.add_argument("--name", help="the search's name (default: strategy, network, labels and the settings varied)")
    _add_data(p)
    _add_db(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("study", help="queue the whole study as one suite of runs",
                       description="Queue the study's experiments: Part 1 (optimizers, batch sizes, learning "
                                   "rates on seed-part1, coarse), Part 2 (dropout, two extra convs, a 10-trial "
                                   "random search), Part 3 (seed-part2 on fine labels, VGG16 transfer). A config "
                                   "shared by several comparisons is queued once. Study epochs: Part 1 10, "
                                   "Part 2 and 3 15, search trials 5, VGG16 5 + 3 fine-tuning. A running "
                                   "dashboard on the same store trains queued runs; --run trains them here, "
                                   "one by one (SIGTERM or Ctrl-C stops the run in training after its batch, "
                                   "`stopped` with its best model saved, and starts no other). Asking again "
                                   "with the same scale and limit reuses the suite.")
    p.add_argument("--epochs-scale", type=finite_float, default=1.0, metavar="X",
                   help="multiply every study epoch count by X (at least 1 epoch each; default 1)")
    p.add_argument("--limit", type=whole_number, help="train every run on the first N training images")
    p.add_argument("--run", action="store_true", help="also train the queued runs here, in the foreground")
    stop_or_remove = p.add_mutually_exclusive_group()
    stop_or_remove.add_argument("--stop", type=whole_number, metavar="SUITE",
                                help="stop suite SUITE instead: its queued runs and trials are dropped, its "
                                     "running run ends after its current batch")
    stop_or_remove.add_argument("--remove", type=whole_number, metavar="SUITE",
                                help="stop suite SUITE and forget it; its runs stay in the store")
    _add_data(p)
    _add_db(p)
    p.set_defaults(func=cmd_study)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, CommandError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_FAILED
    except sqlite3.DatabaseError as exc:  # damage found in a page of the store after it opened
        store = getattr(args, "db", None) or default_db_path()
        print(f"error: the run store {store} cannot be read ({exc}); it was left as it is", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
