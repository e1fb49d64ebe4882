"""Every ``fgvc ...`` command and flag the README shows is one the parser accepts."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from fgvc.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_commands() -> list[str]:
    """``fgvc`` command lines from the README's code blocks (with their indented continuation lines) and inline
    code spans, comments removed."""
    text = README.read_text()
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
    return [re.sub(r"\s+#.*$", "", command).strip() for command in commands]


def subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


COMMANDS = [c for c in readme_commands() if c.split()[1] not in ("...", "<command>")]


def test_the_readme_shows_every_subcommand() -> None:
    assert len(COMMANDS) >= 15
    assert {c.split()[1] for c in COMMANDS} == set(subparsers())


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_is_accepted_by_the_parser(command: str) -> None:
    name, *tokens = command.split()[1:]
    parser = subparsers()[name]
    options = {option: action for action in parser._actions for option in action.option_strings}
    for index, token in enumerate(tokens):
        for alternative in token.strip("[]").split("|"):
            if alternative.startswith("--"):
                assert alternative in options, f"{command}: {alternative} is not a flag of fgvc {name}"
                following = tokens[index + 1].strip("[]") if index + 1 < len(tokens) else ""
                choices = options[alternative].choices
                if choices and following and not following.startswith("-") and not following.isupper():
                    values = following.split("|")
                    assert set(values) - {"..."} <= set(choices), f"{command}: {following} for {alternative}"
    if tokens and not re.search(r"[\[\]|$]|\.\.\.", command):  # a concrete command: it parses as written
        try:
            build_parser().parse_args(command.split()[1:])
        except SystemExit as exit_info:
            pytest.fail(f"the parser refuses the README's `{command}` (exit {exit_info.code})")
