"""Issue 29's paired result split in two (run from the repository root):

    python studies/results/audit-warbirds20/leaked_photos.py logs/audit-warbirds20/audit.json \
        logs/study-warbirds20-whole/preset/eval-val logs/study-warbirds20-whole/without-flagged/eval-val

The `val` photos with a copy in `train` (the audit's leaks) against the rest: how many each run gets right. A run
trained on the copy has seen the photo; one trained without it has not, so the difference on those photos is what
the leak added to the reported accuracy. Writes leaked_photos.json beside this file.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def right_by_photo(evaluation: Path) -> dict[str, bool]:
    """Each photo's path (from the split folder on: ``val/<type>/<file>``) and whether its top-1 is right."""
    with (evaluation / "predictions.csv").open(newline="") as f:
        return {"/".join(Path(row["file"]).parts[-3:]): row["true"] == row["predicted"] for row in csv.DictReader(f)}


def leaked(audit: dict, split: str = "val") -> set[str]:
    """The ``split`` photos that have a copy in ``train``."""
    photos = set()
    for pair in audit["pairs"]:
        sides = {pair["keep"]["split"]: pair["keep"]["photo"], pair["drop"]["split"]: pair["drop"]["photo"]}
        if pair["kind"] == "leak" and "train" in sides and split in sides:
            photos.add(sides[split])
    return photos


if __name__ == "__main__":
    audit_file, with_copies, without_copies = (Path(arg) for arg in sys.argv[1:4])
    flagged = leaked(json.loads(audit_file.read_text()))
    runs = {"with the copies (preset)": right_by_photo(with_copies),
            "without them (without-flagged)": right_by_photo(without_copies)}
    record = {"leaked_val_photos": sorted(flagged)}
    for name, right in runs.items():
        assert flagged <= set(right), sorted(flagged - set(right))
        rest = [ok for photo, ok in right.items() if photo not in flagged]
        record[name] = {"leaked_right": sum(right[photo] for photo in flagged), "leaked": len(flagged),
                        "rest_right": sum(rest), "rest": len(rest), "top1": sum(right.values()) / len(right)}
    (HERE / "leaked_photos.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "leaked_val_photos"}, indent=2))
