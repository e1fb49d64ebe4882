"""EMA weights (``--ema-decay``): the average follows its formula after each optimizer step, batch-norm statistics
are averaged too, the checkpoint holds both weights, training itself is untouched, and
evaluate, predict, gradcam and the notebook use the EMA unless asked for the raw weights, and say so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import PROBABILITY_TOLERANCE, SMALL, MakeDataset, code_cells, execute, tiny_config
from torch import nn

from fgvc.apps.cli import main
from fgvc.apps.predict_output import predict_files
from fgvc.core.config import resume_config
from fgvc.core.errors import CheckpointError, ConfigError
from fgvc.data import FGVC_FOLDER
from fgvc.models.checkpoint import load_checkpoint, load_trained
from fgvc.models.predictor import Predictor
from fgvc.runs.csvlog import EVAL_FIELDS, read_rows
from fgvc.training.ema import ema_model
from fgvc.training.engine import fit

DECAY = 0.9
TINY = {**SMALL, "epochs": 2, "accum_steps": 3}  # 4 batches an epoch: optimizer steps after batches 3 and 4


@pytest.fixture(scope="module")
def root(make_dataset: MakeDataset) -> Path:
    """3 classes, 18 trainval and 9 test images: 4 batches an epoch (of 4, the last 2 images dropped)."""
    return make_dataset(3, 9)


@pytest.fixture(scope="module")
def runs(root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two epochs with the EMA and two without, both accumulating gradients over 3 batches (the EMA's exact
    resume: test_reliability.py's kill -9 test)."""
    base = tmp_path_factory.mktemp("ema-runs")
    straight = fit(tiny_config(root, base / "ema", ema_decay=DECAY, **TINY), progress=False)
    raw = fit(tiny_config(root, base / "raw", **TINY), progress=False)
    return {"ema": straight, "raw": raw}


def test_the_average_follows_the_ema_formula_for_weights_and_batch_norm_statistics() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    ema = ema_model(model, DECAY)
    expected: dict[str, torch.Tensor] = {}
    for step in range(6):
        model.train()
        loss = model(torch.randn(16, 4) + step).pow(2).mean()  # inputs that move the running mean each step
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        ema.update_parameters(model)
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                current = tensor.detach().clone()
                expected[name] = current if step == 0 else DECAY * expected[name] + (1 - DECAY) * current
    averaged, raw = ema.module.state_dict(), model.state_dict()
    for name in ("0.weight", "2.bias", "1.running_mean", "1.running_var"):
        torch.testing.assert_close(averaged[name], expected[name], msg=name)
        assert not torch.allclose(averaged[name], raw[name]), f"{name} is a copy of the raw model's"
    assert not torch.allclose(averaged["1.running_mean"], torch.zeros(8))  # moved from its initial value
    assert int(ema.n_averaged) == 6


def test_epochs_csv_has_the_raw_and_the_ema_metrics_and_training_is_untouched(runs: dict[str, Path]) -> None:
    with_ema, without = read_rows(runs["ema"] / "epochs.csv"), read_rows(runs["raw"] / "epochs.csv")
    assert [r["epoch"] for r in with_ema] == [1, 2]
    for row, plain in zip(with_ema, without, strict=True):
        assert all(0 <= row[f"ema_{name}"] <= 1 for name in EVAL_FIELDS if name != "eval_loss")
        assert row["ema_eval_loss"] != row["eval_loss"]  # two different networks evaluated
        assert {k: row[k] for k in ("train_loss", *EVAL_FIELDS)} == {k: plain[k] for k in ("train_loss", *EVAL_FIELDS)}
    assert not any(k.startswith("ema_") for k in without[0])
    a, b = load_checkpoint(runs["ema"] / "last.pt"), load_checkpoint(runs["raw"] / "last.pt")
    for key, tensor in a["model"].items():  # keeping an average changes nothing of the training itself
        assert torch.equal(tensor, b["model"][key]), key


def test_the_checkpoint_holds_both_weights_one_ema_update_per_optimizer_step(runs: dict[str, Path]) -> None:
    state = load_checkpoint(runs["ema"] / "last.pt")
    assert state["ema"].keys() == state["model"].keys()
    assert state["ema_updates"] == 2 * 2  # 2 epochs of 4 batches, 2 optimizer steps each: not one per batch
    assert any(not torch.equal(state["ema"][k], state["model"][k]) for k in state["model"] if "running_var" in k)
    assert "ema" not in load_checkpoint(runs["raw"] / "last.pt")


def test_a_resume_cannot_change_the_ema_decay() -> None:
    saved = tiny_config(Path("data"), Path("run"), ema_decay=DECAY)
    with pytest.raises(ConfigError, match="--ema-decay cannot change when resuming"):
        resume_config(saved, {"ema_decay": 0.0})


def test_the_final_analysis_uses_the_ema_and_says_so(runs: dict[str, Path]) -> None:
    report = json.loads((runs["ema"] / "eval-test" / "metrics.json").read_text())
    assert report["weights"] == "ema"
    assert report["top1"] == pytest.approx(read_rows(runs["ema"] / "epochs.csv")[-1]["ema_eval_top1"])
    assert "final model (EMA weights)" in (runs["ema"] / "train.log").read_text()
    assert json.loads((runs["raw"] / "eval-test" / "metrics.json").read_text())["weights"] == "raw"


def test_predictor_takes_the_ema_by_default_and_the_raw_weights_on_request(
        runs: dict[str, Path], root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = runs["ema"] / "last.pt"
    state = load_checkpoint(checkpoint)
    images = sorted((root / FGVC_FOLDER / "data" / "images").glob("*.jpg"))[:6]
    default = Predictor.from_checkpoint(checkpoint, device="cpu")
    assert default.weights == "ema" and f"{checkpoint}: using its EMA weights" in capsys.readouterr().err
    raw = Predictor.from_checkpoint(checkpoint, device="cpu", weights="raw")
    assert raw.weights == "raw" and "using its raw weights" in capsys.readouterr().err
    for predictor, key in ((default, "ema"), (raw, "model")):
        for name, tensor in predictor.model.state_dict().items():
            assert torch.equal(tensor, state[key][name]), f"{key} {name}"
    default_scores = predict_files(default, images, topk=3)
    raw_scores = predict_files(raw, images, topk=3)
    gap = max(abs(a["top"][0]["probability"] - b["top"][0]["probability"]) for a, b in zip(default_scores, raw_scores))
    assert gap > PROBABILITY_TOLERANCE  # two different networks
    capsys.readouterr()  # the dataset's own photos: each predictor said it cut their banner
    assert Predictor.from_checkpoint(runs["raw"] / "last.pt", device="cpu").weights == "raw"
    assert capsys.readouterr().err == ""  # one set of weights: nothing to choose, nothing said


def test_weights_ema_on_a_checkpoint_without_one_is_a_clear_error(
        runs: dict[str, Path], root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = runs["raw"] / "last.pt"
    with pytest.raises(CheckpointError, match="holds no EMA weights"):
        load_trained(checkpoint, "ema")
    with pytest.raises(ConfigError, match="weights='best'"):
        load_trained(checkpoint, "best")
    image = next((root / FGVC_FOLDER / "data" / "images").glob("*.jpg"))
    for command in (["predict", "--checkpoint", str(checkpoint), str(image)],
                    ["evaluate", "--checkpoint", str(checkpoint)],
                    ["gradcam", "--checkpoint", str(checkpoint), str(image), "--out", "unused"]):
        assert main([*command, "--weights", "ema", "--device", "cpu"]) == 2
        err = capsys.readouterr().err
        assert f"{checkpoint} holds no EMA weights" in err and len(err.strip().splitlines()) == 1, err


def test_evaluate_predict_and_gradcam_choose_with_weights(
        runs: dict[str, Path], root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = runs["ema"] / "last.pt"
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--device", "cpu", "--out", str(tmp_path / "ema")]) == 0
    captured = capsys.readouterr()
    assert "test split, 9 images (EMA weights)" in captured.out and "using its EMA weights" in captured.err
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--device", "cpu", "--weights", "raw"]) == 0
    assert "(EMA weights)" not in capsys.readouterr().out
    by_weights = {w: json.loads((folder / "metrics.json").read_text()) for w, folder in
                  (("ema", tmp_path / "ema"), ("raw", runs["ema"] / "eval-test-raw"))}
    assert by_weights["ema"]["weights"] == "ema" and by_weights["raw"]["weights"] == "raw"
    last = read_rows(runs["ema"] / "epochs.csv")[-1]
    assert by_weights["ema"]["top1"] == pytest.approx(last["ema_eval_top1"])
    assert by_weights["raw"]["top1"] == pytest.approx(last["eval_top1"])

    image = str(next((root / FGVC_FOLDER / "data" / "images").glob("*.jpg")))
    top = {}
    for weights in ("ema", "raw"):
        assert main(["predict", "--checkpoint", str(checkpoint), image, "--json", "--weights", weights]) == 0
        top[weights] = json.loads(capsys.readouterr().out)[0]["top"][0]["probability"]
        assert main(["gradcam", "--checkpoint", str(checkpoint), image, "--out", str(tmp_path / weights),
                     "--weights", weights]) == 0
        assert f"using its {'EMA' if weights == 'ema' else 'raw'} weights" in capsys.readouterr().err
    assert top["ema"] != pytest.approx(top["raw"], abs=PROBABILITY_TOLERANCE)


@pytest.mark.slow
def test_gradcam_notebook_says_it_uses_the_ema(runs: dict[str, Path], tmp_path: Path) -> None:
    executed = execute("gradcam.ipynb", tmp_path / "gradcam.ipynb", {"RUN_DIR": str(runs["ema"]), "NUM_IMAGES": 2})
    said = [o.get("text", "") for cell in code_cells(executed) for o in cell.outputs if o.get("name") == "stderr"]
    assert any("using its EMA weights" in text for text in said), said
