"""The exclusion list behind issue 29's paired result (run from the repository root):

    python studies/results/audit-warbirds20/train_exclusions.py logs/audit-warbirds20/audit.json

``fgvc audit``'s own ``exclude.txt`` lists the later split's copy of a leak, which would take photos out of `val`
and leave nothing to pair. This list takes the training photos the audit flags instead: the `train` copy of
every photo copied across splits (leaks into `val` or `test`), and of every copy under two labels within `train`
(a conflict) the copy whose label the classifier finds less likely. `val` and `test` stay whole, so a run trained
without them is compared with the preset's run photo by photo on the same `val` (studies/warbirds20-whole.yaml,
recipe without-flagged). Writes exclude-train.txt beside this file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def train_exclusions(audit: dict) -> dict[str, str]:
    """Each flagged training photo (relative to the data root) and why."""
    flagged: dict[str, str] = {}
    for pair in audit["pairs"]:
        keep, drop = pair["keep"], pair["drop"]
        if pair["kind"] == "leak":
            train, other = (keep, drop) if keep["split"] == "train" else (drop, keep)
            if train["split"] == "train":
                flagged.setdefault(train["photo"], f"leak: a copy of {other['photo']} ({other['split']})")
        elif pair["kind"] == "conflict" and drop["split"] == "train":
            flagged.setdefault(drop["photo"], f"conflict: a copy of {keep['photo']} under {keep['label']}")
    return flagged


if __name__ == "__main__":
    flagged = train_exclusions(json.loads(Path(sys.argv[1]).read_text()))
    lines = [f"{photo}  # {why}" for photo, why in sorted(flagged.items())]
    (HERE / "exclude-train.txt").write_text("\n".join(lines) + "\n")
    print(f"{len(lines)} training photos -> {HERE / 'exclude-train.txt'}")
