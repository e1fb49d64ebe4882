"""`fgvc figures`: from a run folder it writes each figure of the README and docs/ that `make figures` regenerates,
and the cover."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from readme_checks import english_documentation, shown_images

from fgvc.apps.cli import main

# Made elsewhere: the web demo's screenshot (make serve-screenshot), a study's and a learning curve's figures, and
# warbirds20's reliability diagram (studies/results/calibration-warbirds20/measure.py figure).
NOT_FROM_A_RUN = {"serve.png", "study_warbirds20.png", "learning_curve_warbirds20.png", "reliability-warbirds20.png"}


def test_figures_writes_every_readme_figure_of_a_run_and_the_cover(short_run: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out, cover = tmp_path / "source", tmp_path / "cover.jpg"
    assert main(["figures", "--run", str(short_run), "--out", str(out), "--cover", str(cover)]) == 0
    written = sorted(p.name for p in out.iterdir())
    shown = {Path(p).name for p in shown_images(english_documentation()) if p.startswith("source/")}
    assert written == sorted(shown - NOT_FROM_A_RUN)
    printed = capsys.readouterr().out
    for path in [*out.iterdir(), cover]:
        assert f"wrote {path}" in printed
        with Image.open(path) as image:
            assert image.width >= 400 and image.height >= 200, path
