"""The command line as a person uses it: output, exit status, one-line errors."""
import json
import subprocess
import sys

import pytest

from lsc_core.cli import main
from lsc_core.store import COMPLETED, Store


def test_presets_lists_the_study_counts_and_the_residual_presets(capsys):
    assert 0 == main(["presets"])
    lines = {line.split()[0]: line.split()[1:3] for line in capsys.readouterr().out.splitlines()[1:]}
    assert ["2,119,252", "2,129,572"] == lines["seed-part1"]
    assert ["2,165,428", "2,175,748"] == lines["seed-part2"]
    assert ["765,172", "785,732"] == lines["resnet-fast"]
    assert ["6,582,740", "6,623,780"] == lines["resnet9"]


def test_train_runs_and_records_a_completed_run(tmp_path, tiny_npz, capsys):
    db = tmp_path / "cli.sqlite"
    code = main(["train", "--preset", "seed-part1", "--labels", "fine", "--epochs", "1", "--limit", "200",
                 "--batch-size", "50", "--data", str(tiny_npz), "--db", str(db)])
    out = capsys.readouterr().out
    assert 0 == code
    (run,) = Store(db).list_runs()
    assert (COMPLETED, "fine", 200) == (run.status, run.label_mode, run.config.limit)
    assert f"run {run.id} completed: best test accuracy {run.best_val_accuracy:.4f} at epoch 1" in out
    assert 1 == len(Store(db).epochs(run.id))
    assert 0 == main(["runs", "--db", str(db)])
    assert f"seed-part1-{run.id}" in capsys.readouterr().out


def test_config_file_and_flags_combine(tmp_path, tiny_npz, capsys):
    from lsc_core.cli import build_parser, config_from_args
    from lsc_core.config import preset

    config_file = tmp_path / "c.json"
    config_file.write_text(preset("seed-part1", epochs=7, batch_size=16).to_json())
    args = build_parser().parse_args(["train", "--config", str(config_file), "--lr", "0.01", "--labels", "fine"])
    assert preset("seed-part1", epochs=7, batch_size=16, learning_rate=0.01, label_mode="fine") == \
        config_from_args(args)


def test_speed_flags_set_the_speed_settings_and_the_run_reports_what_it_got(tmp_path, tiny_npz, capsys):
    from lsc_core.cli import build_parser, config_from_args
    from lsc_core.config import SpeedSettings

    args = build_parser().parse_args(["train", "--no-mixed-precision", "--xla", "--steps-per-execution", "4",
                                      "--no-data-on-device", "--replicas", "2"])
    assert SpeedSettings(mixed_precision=False, xla=True, steps_per_execution=4, data_on_device=False,
                         replicas=2) == config_from_args(args).speed
    assert SpeedSettings() == config_from_args(build_parser().parse_args(["train"])).speed
    code = main(["train", "--preset", "seed-part1", "--epochs", "1", "--limit", "100", "--batch-size", "50",
                 "--steps-per-execution", "2", "--data", str(tiny_npz), "--db", str(tmp_path / "s.sqlite")])
    assert 0 == code
    out = capsys.readouterr().out
    assert "trained on CPU" in out and "): 2 steps per call, batch 50\n" in out


@pytest.mark.parametrize("args, message", [
    (["--replicas", "3"], "error: speed: batch size 64 does not split evenly over 3 replicas"),
    (["--epochs", "0"], "error: epochs: must be a whole number of at least 1, got 0"),
    (["--lr", "-1"], "error: learning_rate: must be a number in (0, 10], got -1.0"),
    (["--config", "CONFIG"], "error: layer 2 (dropout): rate must be in [0, 1), got 1.5"),
    (["--config", "MISSING"], "error: cannot read config"),
    (["--data", "NOWHERE"], "error: "),
    (["--schedule", "linear"], "error: schedule: must be one of constant, step, cosine, onecycle, got 'linear'"),
    (["--weight-decay", "-1"], "error: weight_decay: must be a number in [0, 1), got -1.0"),
    (["--epochs", "3", "--warmup-epochs", "3"],
     "error: warmup_epochs: the warm-up (3 epochs) must be shorter than the run (3 epochs)"),
    (["--augment", "flip,blur"], "error: augment: unknown augmentation 'blur'"),
    (["--nesterov"], "error: nesterov: Nesterov momentum applies to SGD only, not adam"),
    (["--label-smoothing", "1"], "error: label_smoothing: must be a number in [0, 1), got 1.0"),
    (["--early-stopping", "-2"], "error: early_stopping: must be a whole number of epochs >= 0"),
])
def test_bad_input_is_one_line_without_traceback(tmp_path, args, message):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"layers": [{"kind": "flatten"}, {"kind": "dropout", "rate": 1.5}]}))
    args = [{"CONFIG": str(bad), "MISSING": str(tmp_path / "none.json"),
             "NOWHERE": str(tmp_path / "no-data.npz")}.get(a, a) for a in args]
    result = subprocess.run([sys.executable, "-m", "lsc_core", "train", *args, "--db", str(tmp_path / "x.sqlite")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert 1 == len(errors) and errors[0].startswith(message), result.stderr
    assert "Traceback" not in result.stderr
    if (tmp_path / "x.sqlite").exists():  # refused before any run was recorded
        assert [] == Store(tmp_path / "x.sqlite").list_runs()


def test_recipe_flags_set_the_config():
    from lsc_core.cli import build_parser, config_from_args
    from lsc_core.config import preset

    args = build_parser().parse_args(
        ["train", "--preset", "seed-part1", "--schedule", "cosine", "--warmup-epochs", "1", "--augment",
         "standard,cutout", "--label-smoothing", "0.1", "--weight-decay", "5e-4", "--optimizer", "sgd",
         "--momentum", "0.9", "--nesterov", "--early-stopping", "3", "--tta"])
    assert preset("seed-part1", schedule="cosine", warmup_epochs=1, augment=("flip", "crop", "cutout"),
                  label_smoothing=0.1, weight_decay=5e-4, optimizer="sgd", momentum=0.9, nesterov=True,
                  early_stopping=3, tta=True) == config_from_args(args)
    args = build_parser().parse_args(["train", "--augment", "none"])
    assert () == config_from_args(args).augment


def test_an_early_stopped_run_says_why(tmp_path, tiny_npz, capsys):
    db = tmp_path / "cli.sqlite"
    code = main(["train", "--preset", "seed-part1", "--epochs", "4", "--limit", "200", "--lr", "1e-9",
                 "--early-stopping", "1", "--data", str(tiny_npz), "--db", str(db)])
    out = capsys.readouterr().out
    (run,) = Store(db).list_runs()
    assert (0, COMPLETED, 2) == (code, run.status, len(Store(db).epochs(run.id)))
    assert f"run {run.id} ended before its last epoch: early stopping: test accuracy did not improve" in out
    assert 0 == main(["runs", "--db", str(db)])
    assert f"run {run.id}: early stopping" in capsys.readouterr().out


def test_help_texts_describe_the_commands():
    result = subprocess.run([sys.executable, "-m", "lsc_core", "train", "--help"], capture_output=True, text=True)
    assert 0 == result.returncode
    for flag in ("--preset", "--labels", "--epochs", "--optimizer", "--lr", "--batch-size", "--limit", "--config",
                 "--data", "--db", "--backbone", "--weights", "--image-size", "--schedule", "--warmup-epochs",
                 "--weight-decay", "--momentum", "--nesterov", "--label-smoothing", "--early-stopping", "--augment",
                 "--tta"):
        assert flag in result.stdout


def test_study_suites_are_stopped_and_removed_from_the_command_line(tmp_path, capsys):
    from lsc_core import study

    db = str(tmp_path / "runs.sqlite")
    assert 0 == main(["study", "--epochs-scale", "0.1", "--limit", "100", "--db", db])
    suite_id = study.latest_suite(Store(db))["id"]
    assert 0 == main(["study", "--stop", str(suite_id), "--db", db])
    assert f"suite {suite_id} stopped: 20 run(s) and trial(s) stopped" in capsys.readouterr().out
    assert {"stopped": 20} == study.progress(Store(db), study.get_suite(Store(db), suite_id))
    assert 0 == main(["study", "--remove", str(suite_id), "--db", db])
    assert f"suite {suite_id} removed" in capsys.readouterr().out
    assert ([], 20) == (study.suites(Store(db)), len(Store(db).list_runs()))  # the runs stay
    assert 0 != main(["study", "--remove", str(suite_id), "--db", db])
    assert f"error: no suite {suite_id}" in capsys.readouterr().err
