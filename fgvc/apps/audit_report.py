"""What ``fgvc audit`` writes into its folder: ``audit.md`` (the numbers), ``audit.html`` (a contact sheet: each
flagged pair or photo as thumbnails side by side, with labels and paths; the thumbnails under ``thumbs/``),
``audit.json`` (everything, machine-readable) and ``exclude.txt`` (the suggested exclusion list, each line saying
why, for ``fgvc split --exclude`` and ``fgvc train --exclude``).

    paths = write_audit(audit, "audit", top=50)
"""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from fgvc.apps.audit import Audit
from fgvc.apps.audit_copies import Pair, evidence, strongest_first
from fgvc.apps.audit_labels import Doubt
from fgvc.apps.audit_photos import Photo

THUMB_PX = 160  # the long side of a contact-sheet thumbnail
SHEET_PAIRS = 200  # pairs of each kind shown on the contact sheet (all are in audit.json)
METHODS = ("exact", "dhash", "embedding", "any")
STYLE = ("body{font-family:sans-serif;margin:1em}section{margin-bottom:2em}.card{display:inline-block;"
         "vertical-align:top;border:1px solid #ccc;margin:4px;padding:4px;max-width:360px}figure{display:inline-block;"
         "margin:2px;width:170px;vertical-align:top}figcaption{font-size:11px;word-break:break-all}"
         ".why{font-size:12px;font-weight:bold}")


def _found_by(pair: Pair, method: str) -> bool:
    """Whether ``method`` (one of ``METHODS``) found ``pair``."""
    return {"exact": pair.exact, "dhash": pair.dhash_bits is not None, "embedding": pair.similarity is not None,
            "any": True}[method]


def leak_counts(audit: Audit) -> dict[tuple[str, str], dict[str, int]]:
    """For each (later split, earlier split) with a leak: how many photos of the later split have a copy in the
    earlier one, by each of ``METHODS``."""
    found: dict[tuple[str, str], dict[str, set[int]]] = {}
    for pair in audit.pairs:
        if pair.kind == "leak":
            key = (audit.photos[pair.drop].split, audit.photos[pair.keep].split)
            for method in METHODS:
                if _found_by(pair, method):
                    found.setdefault(key, {m: set() for m in METHODS})[method].add(pair.drop)
    return {key: {method: len(photos) for method, photos in by.items()} for key, by in found.items()}


def conflict_counts(audit: Audit) -> dict[str, dict[str, int]]:
    """For each split with a conflict: how many of its photos have a copy under another label in it, by each of
    ``METHODS``."""
    found: dict[str, dict[str, set[int]]] = {}
    for pair in audit.pairs:
        if pair.kind == "conflict":
            for method in METHODS:
                if _found_by(pair, method):
                    by = found.setdefault(audit.photos[pair.keep].split, {m: set() for m in METHODS})
                    by[method] |= {pair.keep, pair.drop}
    return {split: {method: len(photos) for method, photos in by.items()} for split, by in found.items()}


def class_counts(audit: Audit) -> dict[str, dict[str, int]]:
    """The photos of each class in each split (0 where a split lacks the class), classes sorted."""
    counts = Counter((photo.label, photo.split) for photo in audit.photos)
    return {label: {split: counts[label, split] for split in audit.splits}
            for label in sorted({photo.label for photo in audit.photos})}


def _row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    return [_row(header), _row(["---"] * len(header)), *(_row(row) for row in rows)]


def _method_header(audit: Audit) -> list[str]:
    return ["exact", f"dHash ≤ {audit.settings['dhash_near_bits']} bits",
            f"embedding ≥ {audit.settings['min_similarity']:g}", "any"]


def exclusions(audit: Audit) -> list[tuple[str, str]]:
    """The photos an exclusion list suggests, each once with why: the files that do not decode; of each leak the
    later split's copy, of each conflict the copy whose label the classifier finds less likely (copies under one
    label in one split are left alone), each with its strongest evidence. Doubtful labels are not among them: most
    of what confident learning flags on a weak classifier are hard photos, which a person must look at."""
    reasons: dict[str, str] = {}
    for photo, why in audit.bad:
        reasons.setdefault(photo.name, f"does not decode: {why}")
    for pair in strongest_first(audit.pairs):
        if pair.kind != "copy":
            keep = audit.photos[pair.keep]
            reasons.setdefault(audit.photos[pair.drop].name,
                               f"{pair.kind}: {evidence(pair)} of {keep.name} ({keep.split}, {keep.label})")
    return list(reasons.items())


def doubt_reason(audit: Audit, doubt: Doubt) -> str:
    """Why a label is doubtful, in words: its probability and the likeliest class's."""
    return (f"doubtful label: p({audit.photos[doubt.photo].label}) = {doubt.p_label:.3f}, likeliest "
            f"{doubt.suggested} (p = {doubt.p_suggested:.3f})")



def format_markdown(audit: Audit, top: int) -> str:
    """``audit.md``: the numbers and tables of the audit."""
    sizes = Counter(photo.split for photo in audit.photos)
    lines = [f"# Audit of {audit.root} ({audit.dataset})", "",
             f"{len(audit.photos)} photos that decode: " + ", ".join(f"{split} {sizes[split]}"
                                                                     for split in audit.splits) + ".",
             "Copies are found by sha256 (exact), by a 64-bit dHash within "
             f"{audit.settings['dhash_near_bits']} bits, and by a cosine similarity of at least "
             f"{audit.settings['min_similarity']:g} between {audit.settings['embedding_arch']} features "
             "(ImageNet weights): the last also finds crops and recolours. The thumbnails are in audit.html.", "",
             "## Copies across splits (leaks)", ""]
    leaks = leak_counts(audit)
    lines += (_table(["photos of", "with a copy in", *_method_header(audit)],
                     [[later, f"{earlier} ({sizes[later]} photos)", *counts.values()]
                      for (later, earlier), counts in sorted(leaks.items())]) if leaks else ["None found."])
    lines += ["", "## Copies under two labels in one split (conflicts)", ""]
    conflicts = conflict_counts(audit)
    lines += (_table(["photos of", *_method_header(audit)],
                     [[f"{split} ({sizes[split]} photos)", *counts.values()]
                      for split, counts in sorted(conflicts.items())]) if conflicts else ["None found."])
    same = sum(pair.kind == "copy" for pair in audit.pairs)
    lines += ["", f"Copies under one label in one split: {same} pair(s) (audit.json; not suggested for exclusion).",
              "", "## Doubtful labels", "", audit.doubt_note + ".", ""]
    if audit.doubts:
        lines += [f"cleanlab flags {len(audit.doubts)} photos ({100 * len(audit.doubts) / len(audit.photos):.1f} %); "
                  f"the {min(top, len(audit.doubts))} likeliest mislabelled are below. The weaker the classifier, the "
                  "more of the flagged photos are hard or unusual rather than mislabelled: look at each on the contact "
                  "sheet before leaving it out.", ""]
        lines += _table(["rank", "photo", "split", "label", "p(label)", "likeliest class", "p(likeliest)"],
                        [[rank, audit.photos[d.photo].name, audit.photos[d.photo].split, audit.photos[d.photo].label,
                          f"{d.p_label:.3f}", d.suggested, f"{d.p_suggested:.3f}"]
                         for rank, d in enumerate(audit.doubts[:top], 1)])
    lines += ["", "## Files that do not decode", ""]
    lines += [f"- {photo.name}: {why}" for photo, why in audit.bad] or ["None."]
    lines += ["", f"## Tiny or stretched photos (short side < {audit.settings['min_side_px']} px, or long side > "
              f"{audit.settings['max_aspect']:g} x short)", ""]
    lines += [f"- {audit.photos[i].name}: {width} x {height} px, {why}"
              for i, width, height, why in audit.odd_sizes] or ["None."]
    counts = class_counts(audit)
    lines += ["", "## Classes per split", ""]
    lines += _table(["class", *audit.splits, "total"],
                    [[label, *(n or "**0**" for n in by.values()), sum(by.values())] for label, by in counts.items()])
    missing = {split: [label for label, by in counts.items() if by[split] == 0] for split in audit.splits}
    lines += ["", *([f"Missing from {split}: {', '.join(labels)}." for split, labels in missing.items() if labels]
                    or ["Every split holds every class."])]
    for split in audit.splits:
        present = [by[split] for by in counts.values() if by[split]]
        if present:
            lines.append(f"{split}: {min(present)} to {max(present)} photos a class.")
    lines += ["", f"exclude.txt suggests {len(exclusions(audit))} photo(s) (files that do not decode, leaks and "
              f"conflicts), each with why, and holds the {min(top, len(audit.doubts))} likeliest mislabelled as "
              "commented-out lines: review it, then pass it to `fgvc split --exclude` or `fgvc train --exclude`."]
    return "\n".join(lines) + "\n"


def format_exclusions(audit: Audit, top: int) -> str:
    """``exclude.txt``: one photo a line, relative to the data root, each with why; then the ``top`` likeliest
    mislabelled photos as commented-out lines, to be looked at and uncommented one by one."""
    listed = exclusions(audit)
    names = {name for name, _ in listed}
    doubts = [d for d in audit.doubts[:top] if audit.photos[d.photo].name not in names]
    lines = ["# Photos fgvc audit suggests leaving out, one a line (relative to the data root), each with why.",
             "# Of a copy across splits the later split's is listed; of a copy under two labels, the one whose label",
             "# the out-of-fold classifier finds less likely. Review the contact sheet (audit.html), delete or",
             "# comment out a line to keep its photo, then pass the file to fgvc split --exclude or fgvc train",
             "# --exclude. No photo has been moved or deleted.",
             *(f"{name}  # {why}" for name, why in listed)]
    if doubts:
        lines += ["", f"# The {len(doubts)} likeliest mislabelled photos (audit.md), left in: look at each on the "
                  "contact sheet and", "# delete the leading '# ' of a line to leave its photo out.",
                  *(f"# {audit.photos[d.photo].name}  # {doubt_reason(audit, d)}" for d in doubts)]
    return "\n".join(lines) + "\n"


def _photo_json(audit: Audit, index: int) -> dict[str, str]:
    photo = audit.photos[index]
    return {"photo": photo.name, "split": photo.split, "label": photo.label, "sha256": audit.digests[index]}


def audit_json(audit: Audit) -> dict[str, object]:
    """``audit.json``: every finding, photos named relative to the data root."""
    return {
        "data_root": audit.root, "dataset": audit.dataset, "splits": audit.splits, "settings": audit.settings,
        "photos": len(audit.photos),
        "bad_files": [{"photo": photo.name, "split": photo.split, "reason": why} for photo, why in audit.bad],
        "odd_sizes": [{**_photo_json(audit, i), "width": w, "height": h, "why": why}
                      for i, w, h, why in audit.odd_sizes],
        "class_counts": class_counts(audit),
        "leak_counts": [{"split": later, "copy_in": earlier, **counts}
                        for (later, earlier), counts in sorted(leak_counts(audit).items())],
        "conflict_counts": conflict_counts(audit),
        "pairs": [{"kind": p.kind, "keep": _photo_json(audit, p.keep), "drop": _photo_json(audit, p.drop),
                   "exact": p.exact, "dhash_bits": p.dhash_bits, "similarity": p.similarity} for p in audit.pairs],
        "doubtful_labels_method": audit.doubt_note,
        "doubtful_labels": [{**_photo_json(audit, d.photo), "likeliest": d.suggested, "p_label": d.p_label,
                             "p_likeliest": d.p_suggested, "quality": d.quality} for d in audit.doubts],
        "exclude": [{"photo": name, "why": why} for name, why in exclusions(audit)],
    }


def write_thumbnail(photo: Photo, digest: str, folder: Path) -> str:
    """A JPEG thumbnail of ``photo`` (long side ``THUMB_PX``) in ``folder``, named by its sha256; its path
    relative to the folder's parent."""
    target = folder / f"{digest[:16]}.jpg"
    if not target.is_file():
        with Image.open(photo.path) as image:
            image = image.convert("RGB")
            image.thumbnail((THUMB_PX, THUMB_PX))
            image.save(target, quality=80)
    return f"{folder.name}/{target.name}"


def _figure(audit: Audit, index: int, thumbs: Path) -> str:
    photo = audit.photos[index]
    return (f'<figure><img src="{html.escape(write_thumbnail(photo, audit.digests[index], thumbs))}" alt="">'
            f"<figcaption><b>{html.escape(photo.split)} / {html.escape(photo.label)}</b><br>"
            f"{html.escape(photo.name)}</figcaption></figure>")


def _card(why: str, figures: Sequence[str]) -> str:
    return f'<div class="card"><div class="why">{html.escape(why)}</div>{"".join(figures)}</div>'


def format_html(audit: Audit, folder: Path, top: int) -> str:
    """``audit.html``: each flagged pair or photo as thumbnails side by side (written into ``folder/thumbs``),
    with its split, label and path."""
    thumbs = folder / "thumbs"
    thumbs.mkdir(exist_ok=True)
    sections = []
    for kind, title in (("leak", "Copies across splits (leaks)"), ("conflict", "Copies under two labels (conflicts)")):
        pairs = strongest_first([p for p in audit.pairs if p.kind == kind])
        cards = [_card(f"{evidence(p)}; exclude.txt lists the right-hand photo",
                       [_figure(audit, p.keep, thumbs), _figure(audit, p.drop, thumbs)]) for p in pairs[:SHEET_PAIRS]]
        more = f"<p>{len(pairs) - SHEET_PAIRS} more in audit.json.</p>" if len(pairs) > SHEET_PAIRS else ""
        sections.append((f"{title}: {len(pairs)} pair(s)", "".join(cards) + more))
    cards = [_card(f"#{rank}: {doubt_reason(audit, d)}", [_figure(audit, d.photo, thumbs)])
             for rank, d in enumerate(audit.doubts[:top], 1)]
    sections.append((f"Doubtful labels: the {len(cards)} likeliest of {len(audit.doubts)}",
                     f"<p>{html.escape(audit.doubt_note)}.</p>" + "".join(cards)))
    cards = [_card(why, [_figure(audit, i, thumbs)]) for i, _, _, why in audit.odd_sizes]
    sections.append((f"Tiny or stretched photos: {len(cards)}", "".join(cards)))
    items = "".join(f"<li>{html.escape(photo.name)}: {html.escape(why)}</li>" for photo, why in audit.bad)
    sections.append((f"Files that do not decode: {len(audit.bad)}", f"<ul>{items}</ul>"))
    body = "".join(f"<section><h2>{html.escape(title)}</h2>{content}</section>" for title, content in sections)
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>fgvc audit of {html.escape(audit.root)}</title>'
            f"<style>{STYLE}</style></head><body><h1>fgvc audit of {html.escape(audit.root)}</h1>"
            f"<p>{len(audit.photos)} photos; the numbers are in audit.md.</p>{body}</body></html>\n")


def write_audit(audit: Audit, out: str | Path, top: int) -> list[Path]:
    """Write ``audit.md``, ``audit.html`` (with ``thumbs/``), ``audit.json`` and ``exclude.txt`` into ``out``;
    their paths."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    texts = {"audit.md": format_markdown(audit, top), "audit.html": format_html(audit, folder, top),
             "audit.json": json.dumps(audit_json(audit), indent=1, ensure_ascii=False) + "\n",
             "exclude.txt": format_exclusions(audit, top)}
    for name, text in texts.items():
        (folder / name).write_text(text, encoding="utf-8")
    return [folder / name for name in texts]
