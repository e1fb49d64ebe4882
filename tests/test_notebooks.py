"""Both notebooks: committed clean, free of logic, and running top to bottom with demo parameters."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from helpers import NUM_CLASSES, ROOT, MakeDataset, code_cells, execute

if TYPE_CHECKING:
    import nbformat

NOTEBOOKS = ("main.ipynb", "gradcam.ipynb")


def images_per_cell(notebook: nbformat.NotebookNode) -> list[int]:
    return [sum("image/png" in out.get("data", {}) for out in cell.outputs) for cell in code_cells(notebook)]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_without_outputs_and_without_logic(name: str) -> None:
    notebook = json.loads((ROOT / name).read_text())  # the file as committed (nbformat takes seconds to import)
    cells = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    for cell in cells:
        assert cell["outputs"] == [] and cell["execution_count"] is None, f"{name} is committed with outputs"
        source = "\n".join(line for line in "".join(cell["source"]).splitlines() if not line.startswith("%"))
        for node in ast.walk(ast.parse(source)):
            assert not isinstance(node, ast.FunctionDef | ast.ClassDef | ast.For | ast.While | ast.Lambda), \
                f"{name} defines logic in a cell: {ast.unparse(node).splitlines()[0]}"
    tagged = [cell for cell in cells if "parameters" in cell["metadata"].get("tags", [])]
    assert len(tagged) == 1


@pytest.mark.slow
def test_main_notebook_runs_top_to_bottom(make_dataset: MakeDataset, tmp_path: Path) -> None:
    run_dir, data = tmp_path / "run", make_dataset(NUM_CLASSES, 12, size=(128, 116))  # the short run's data
    executed = execute("main.ipynb", tmp_path / "main.ipynb", {
        "PRESET": "demo", "DATA_ROOT": str(data), "EPOCHS": 1, "IMG_SIZE": 64, "BATCH_SIZE": 16,
        "WORKERS": 0, "RUN_DIR": str(run_dir)})
    sources = [cell.source for cell in code_cells(executed)]
    images = images_per_cell(executed)
    assert images[next(i for i, s in enumerate(sources) if "samples_figure" in s)] == 1
    assert images[next(i for i, s in enumerate(sources) if "curves_figure" in s)] == 1
    assert images[next(i for i, s in enumerate(sources) if "confusion_figure" in s)] == 1
    text = "".join(o.get("text", "") for cell in code_cells(executed) for o in cell.outputs)
    assert "top-1" in text and f"{NUM_CLASSES} classes" in text and "most-confused pairs" in text
    assert "McNemar's exact test" in text and "verdict: " in text  # the optional last section: TTA or not?
    assert (run_dir / "last.pt").exists() and (run_dir / "eval-test" / "metrics.json").exists()
    assert (run_dir / "eval-test-tta" / "compare-vs-run-eval-test.json").exists()


@pytest.mark.slow
def test_gradcam_notebook_runs_top_to_bottom(short_run: Path, tmp_path: Path) -> None:
    executed = execute("gradcam.ipynb", tmp_path / "gradcam.ipynb", {"RUN_DIR": str(short_run), "NUM_IMAGES": 4})
    assert sum(images_per_cell(executed)) == 3  # correct/wrong grid, methods comparison, confused pairs
