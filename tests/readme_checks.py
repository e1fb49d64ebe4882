"""What the documentation's tests share. The documentation is README.md, its Chinese translation README.zh-CN.md
and every page in docs/ (found by glob, so a new page is checked as soon as it exists); README.md and docs/ are the
English documentation, where every command is shown. Each helper takes a file's text: its ``fgvc`` commands and what
is wrong with one, its local links and images, its EfficientNet table."""

from __future__ import annotations

import argparse
import functools
import re
from pathlib import Path

from fgvc.apps.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
README_ZH = ROOT / "README.zh-CN.md"
DOCS = ROOT / "docs"


def docs_pages() -> list[Path]:
    """Every page of docs/."""
    return sorted(DOCS.glob("*.md"))


def english_documentation() -> list[Path]:
    """README.md and every docs page: together they show every command and figure."""
    return [README, *docs_pages()]


def documentation() -> list[Path]:
    """Every file the documentation tests check: both READMEs and every docs page."""
    return [README, README_ZH, *docs_pages()]


def commands_in(text: str) -> list[str]:
    """``fgvc`` command lines from a Markdown text's code blocks (with their indented continuation lines) and
    inline code spans, comments removed; without the placeholders ``fgvc ...`` and ``fgvc <command>``."""
    commands: list[str] = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        continuing = False
        for line in block.splitlines():
            if line.startswith("fgvc "):
                commands.append(line)
                continuing = True
            elif continuing and line.startswith(" ") and line.strip():
                commands[-1] += " " + line.strip()
            else:
                continuing = False
    commands += re.findall(r"`(fgvc [^`]+)`", text)
    commands += ["fgvc " + line.split(" -m fgvc ", 1)[1] for line in text.splitlines() if " -m fgvc " in line]
    commands = [re.sub(r"\s+#.*$", "", command).strip() for command in commands]
    return [c for c in commands if c.split()[1] not in ("...", "<command>")]


def documented_commands() -> list[str]:
    """The ``fgvc`` commands of README.md and every docs page, for tests that run or read a documented command
    wherever it lives."""
    return [command for path in english_documentation() for command in commands_in(path.read_text())]


def page_with(pattern: str) -> Path:
    """The one file of the English documentation whose text matches the regular expression ``pattern``."""
    [path] = [path for path in english_documentation() if re.search(pattern, path.read_text())]
    return path


@functools.cache
def fgvc_parser() -> argparse.ArgumentParser:
    """fgvc's command-line parser, built once (reading arguments leaves it as it was)."""
    return build_parser()


def subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in fgvc_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def command_problems(command: str) -> list[str]:
    """What is wrong with one documented command: an unknown subcommand or flag, a value outside a flag's choices,
    or (for a concrete command, without ``[...]``, ``|``, ``$`` or ``...``) the parser refusing it."""
    name, *tokens = command.split()[1:]
    if name not in subparsers():
        return [f"{command}: {name} is not a subcommand of fgvc"]
    parser = subparsers()[name]
    options = {option: action for action in parser._actions for option in action.option_strings}
    problems = []
    for index, token in enumerate(tokens):
        for alternative in token.strip("[]").split("|"):
            if alternative.startswith("--"):
                if alternative not in options:
                    problems.append(f"{command}: {alternative} is not a flag of fgvc {name}")
                    continue
                following = tokens[index + 1].strip("[]") if index + 1 < len(tokens) else ""
                choices = options[alternative].choices
                if choices and following and not following.startswith("-") and not following.isupper():
                    values = following.split("|")
                    if not set(values) - {"..."} <= set(choices):
                        problems.append(f"{command}: {following} for {alternative}")
    if tokens and not problems and not re.search(r"[\[\]|$]|\.\.\.", command):  # concrete: it parses as written
        try:
            fgvc_parser().parse_args(command.split()[1:])
        except SystemExit as exit_info:
            problems.append(f"the parser refuses `{command}` (exit {exit_info.code})")
    return problems


def commands_problems(text: str) -> list[str]:
    """What is wrong with any ``fgvc`` command of a Markdown text."""
    return [problem for command in commands_in(text) for problem in command_problems(command)]


def heading_anchors(text: str) -> set[str]:
    """The anchors GitHub gives a Markdown file's headings: lower case, punctuation dropped (letters of any
    script, digits, ``_`` and ``-`` kept), spaces to ``-``, a repeated anchor numbered ``-1``, ``-2``..."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    anchors: set[str] = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", text, re.M):
        anchor = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        candidate, count = anchor, 0
        while candidate in anchors:
            count += 1
            candidate = f"{anchor}-{count}"
        anchors.add(candidate)
    return anchors


def local_links(text: str) -> list[str]:
    """The targets of a file's links and images that point into the repository (no URL scheme)."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    targets = re.findall(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text)
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def local_images(text: str) -> list[str]:
    """The repository files a Markdown text shows as images, relative to the file."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return [t for t in re.findall(r"!\[[^\]]*\]\(([^)\s]+)", text) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def shown_images(paths: list[Path]) -> set[str]:
    """The images the files ``paths`` show, as paths relative to the repository root (``source/scaling.png``)."""
    return {(path.parent / image).resolve().relative_to(ROOT).as_posix()
            for path in paths for image in local_images(path.read_text())}


def link_problems(text: str, source: Path) -> list[str]:
    """Every local link or image of ``text`` (the text of ``source``, or ``source`` changed) must name an
    existing file, and an ``#anchor`` must be a heading of its Markdown target."""
    problems = []
    for target in local_links(text):
        path_part, _, anchor = target.partition("#")
        path = (source.parent / path_part) if path_part else source
        if not path.exists():
            problems.append(f"{source.relative_to(ROOT)}: {target}: {path_part} does not exist")
        elif anchor:
            headings = heading_anchors(text if not path_part else path.read_text())
            if anchor not in headings:
                problems.append(f"{source.relative_to(ROOT)}: {target}: no heading #{anchor} in {path.name}")
    return problems


def efficientnet_table(text: str) -> dict[str, tuple[float, float, int, float]]:
    """The rows ``| B0 | width | depth | resolution | dropout |`` of a compound-scaling table in a text."""
    rows = re.findall(r"^\|\s*(B\d)\s*\|\s*([\d.]+)\s*\|\s*([\d.]+)\s*\|\s*(\d+)\s*\|\s*([\d.]+)\s*\|", text, re.M)
    return {name: (float(w), float(d), int(r), float(p)) for name, w, d, r, p in rows}
