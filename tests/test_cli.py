"""The command line end to end: synth -> train -> evaluate -> predict, and its error messages."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fgvc.apps.cli import build_parser, main
from fgvc.apps.cli.flags import config_overrides
from fgvc.core.config import TrainConfig, flag, make_config
from fgvc.data import FGVC_FOLDER
from fgvc.runs.csvlog import read_rows

REPO = Path(__file__).resolve().parents[1]


def test_synth_difficulty_reaches_the_generator(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--classes", "3", "--per-class", "3", "--size", "64x84"]
    assert main(["synth", "--out", str(tmp_path / "hard"), *common, "--difficulty", "hard"]) == 0
    assert "difficulty=hard" in (tmp_path / "hard" / FGVC_FOLDER / "synthetic.txt").read_text()
    with pytest.raises(SystemExit):
        main(["synth", "--out", str(tmp_path / "other"), *common, "--difficulty", "medium"])
    assert "invalid choice: 'medium'" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()


def test_synth_train_evaluate_predict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, run = tmp_path / "data", tmp_path / "run"
    assert main(["synth", "--out", str(data), "--classes", "4", "--per-class", "6", "--size", "96x88"]) == 0
    assert main(["train", "--preset", "demo", "--data-root", str(data), "--epochs", "1", "--img-size", "32",
                 "--batch-size", "8", "--workers", "0", "--run-dir", str(run), "--no-progress"]) == 0
    assert (run / "last.pt").exists()
    capsys.readouterr()

    assert main(["evaluate", "--checkpoint", str(run / "last.pt"), "--split", "val"]) == 0
    summary = capsys.readouterr().out
    report = json.loads((run / "eval-val" / "metrics.json").read_text())
    assert report["split"] == "val" and 0 <= report["top1"] <= 1 and report["num_samples"] > 0
    assert f"{100 * report['top1']:6.2f}%" in summary and "most-confused pairs" in summary

    images = sorted((data / FGVC_FOLDER / "data" / "images").glob("*.jpg"))[:2]
    assert main(["predict", "--checkpoint", str(run / "last.pt"), *map(str, images), "--topk", "3", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    meta = data / FGVC_FOLDER / "data"
    classes = (meta / "variants.txt").read_text().splitlines()
    families = (meta / "families.txt").read_text().splitlines()
    assert [r["file"] for r in results] == list(map(str, images))
    for result in results:
        assert len(result["top"]) == 3 and {g["class"] for g in result["top"]} <= set(classes)
        assert {g["family"] for g in result["top"]} <= set(families)
        probabilities = [g["probability"] for g in result["top"]]
        assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1 + 1e-6

    folder = tmp_path / "photos"
    folder.mkdir()
    for image in images:
        (folder / image.name).write_bytes(image.read_bytes())
    assert main(["predict", "--checkpoint", str(run / "last.pt"), str(folder), "--topk", "2", "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 2 * len(images) and {r["rank"] for r in rows} == {"1", "2"}
    assert all(r["manufacturer"] for r in rows)

    not_image = tmp_path / "notes.jpg"
    not_image.write_text("not a picture")
    assert main(["predict", "--checkpoint", str(run / "last.pt"), str(not_image), str(images[0])]) == 1
    captured = capsys.readouterr()
    assert str(not_image) in captured.err and str(images[0]) in captured.out


def test_user_errors_are_one_line_with_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--preset", "demo", "--epochs", "0"]) == 2
    assert "epochs=0" in capsys.readouterr().err
    assert main(["train", "--preset", "demo", "--data-root", str(tmp_path), "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "fgvc download" in err and "Traceback" not in err
    assert main(["evaluate", "--checkpoint", str(tmp_path / "nope.pt")]) == 2
    assert "nope.pt" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["synth", "download", "train", "evaluate", "compare", "predict", "export"])
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0 and "usage: fgvc " + command in capsys.readouterr().out


def test_train_flags_are_generated_from_every_config_field(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for item in dataclasses.fields(TrainConfig):
        if item.name != "preset":
            assert flag(item.name) in text, item.name
            assert " ".join(item.metadata["help"].split()[:4]) in text, item.name  # the help kept beside the field
    args = build_parser().parse_args(["train", "--momentum", "0.8", "--no-pretrained", "--eval-view", "crop"])
    assert (args.momentum, args.pretrained, args.eval_view, args.lr) == (0.8, False, "crop", None)


def test_config_file_sets_fields_and_flags_override_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    yaml_file = tmp_path / "my.yaml"
    yaml_file.write_text("preset: demo\nimg_size: 96\nmin_crop_scale: 0.6\nmomentum: 0.8\n")
    args = build_parser().parse_args(["train", "--config", str(yaml_file), "--img-size", "64"])
    cfg = make_config(args.preset, args.config, **config_overrides(args))  # what `fgvc train` runs
    assert (cfg.preset, cfg.img_size, cfg.min_crop_scale, cfg.momentum) == ("demo", 64, 0.6, 0.8)
    assert cfg.lr == make_config("demo").lr  # untouched fields keep the preset's value
    json_file = tmp_path / "config.json"  # the format every run folder holds
    json_file.write_text(json.dumps(cfg.to_dict()))
    assert make_config(config_file=json_file) == cfg

    yaml_file.write_text("preset: demo\nlearning_rate: 0.1\n")
    assert main(["train", "--config", str(yaml_file)]) == 2
    assert "learning_rate" in capsys.readouterr().err
    yaml_file.write_text("epochs: [1\n")
    assert main(["train", "--config", str(yaml_file)]) == 2
    err = capsys.readouterr().err
    assert str(yaml_file) in err and "YAML" in err and len(err.strip().splitlines()) == 1


def test_resume_honours_safe_overrides_and_refuses_the_rest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, run = tmp_path / "data", tmp_path / "run"
    assert main(["synth", "--out", str(data), "--classes", "3", "--per-class", "6", "--size", "96x88"]) == 0
    assert main(["train", "--preset", "demo", "--data-root", str(data), "--epochs", "2", "--img-size", "32",
                 "--batch-size", "8", "--workers", "0", "--warmup-epochs", "0", "--run-dir", str(run),
                 "--no-progress", "--stop-after", "1"]) == 0
    last = str(run / "last.pt")
    capsys.readouterr()
    for refused, named in ((["--lr", "0.5"], "--lr cannot change"), (["--img-size", "96"], "--img-size cannot"),
                           (["--epochs", "1"], "--epochs 1 is shorter"), (["--preset", "demo"], "--preset cannot")):
        assert main(["train", "--resume", last, *refused]) == 2
        err = capsys.readouterr().err
        assert named in err and len(err.strip().splitlines()) == 1, err
    assert read_rows(run / "epochs.csv")[-1]["epoch"] == 1  # nothing was trained by a refused resume

    assert main(["train", "--resume", last, "--epochs", "3", "--workers", "0", "--device", "cpu",
                 "--no-progress"]) == 0
    rows = read_rows(run / "epochs.csv")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[1]["lr"] > 0.1 * rows[0]["lr"] and rows[2]["lr"] == pytest.approx(0, abs=1e-12)  # one schedule of 3
    assert json.loads((run / "config.json").read_text())["epochs"] == 3
    assert "resuming" in (run / "train.log").read_text() and "(was 2: schedule recomputed)" in (
        run / "train.log").read_text()


def test_a_bug_keeps_its_traceback_while_a_user_error_gets_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import fgvc.data.checks

    def shape_bug(*args: object, **kwargs: object) -> None:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x1280 and 1792x6)")

    monkeypatch.setattr(fgvc.data.checks, "check_data", shape_bug)
    with pytest.raises(RuntimeError, match="mat1 and mat2"):  # not turned into exit status 2
        main(["check-data", "--data-root", str(tmp_path)])
    monkeypatch.undo()
    assert main(["check-data", "--data-root", str(tmp_path)]) == 2  # a deliberate message
    err = capsys.readouterr().err
    assert err.startswith("fgvc: error: FGVC-Aircraft not found") and len(err.strip().splitlines()) == 1


def test_annotation_files_are_checked_before_any_image_is_decoded(tiny_root: Path, tmp_path: Path) -> None:
    import shutil

    from fgvc.core.errors import DatasetError
    from fgvc.data import build_loaders

    copy = tmp_path / "copy"
    shutil.copytree(tiny_root, copy)
    families = copy / FGVC_FOLDER / "data" / "families.txt"
    families.unlink()
    for image in (copy / FGVC_FOLDER / "data" / "images").glob("*.jpg"):
        image.write_text("not a picture")  # decoding any image first would raise BadImageError instead
    with pytest.raises(DatasetError, match=str(families)):
        build_loaders(make_config("demo", data_root=str(copy), workers=0))


def test_light_commands_import_only_what_they_need() -> None:
    """``fgvc --help`` answers at once, ``fgvc synth`` and the run-folder module need no torch, and ``fgvc status``
    (which the SLURM job script asks between runs) reads a checkpoint with torch alone."""
    script = ("import sys; from fgvc.apps.cli import build_parser, main; build_parser(); "
              "print('HELP', sorted(m for m in ('torch', 'numpy', 'PIL') if m in sys.modules)); "
              "import fgvc.data.synthetic, fgvc.runs.folders, fgvc.runs.csvlog, fgvc.runs.runlog, fgvc.runs.status; "
              "print('SYNTH, RUN FOLDER', sorted(m for m in ('torch', 'cv2') if m in sys.modules)); "
              "main(['status', 'nowhere']); print('STATUS', sorted(m for m in "
              "('torchvision', 'efficientnet_pytorch', 'fgvc.models.backbones', 'fgvc.data.loaders') "
              "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["HELP []", "SYNTH, RUN FOLDER []", "STATUS []"]
