"""The documentation (README.md, README.zh-CN.md and every page of docs/, found by glob) is kept true: every
``fgvc ...`` command and flag it shows is one the parser accepts, every figure it shows exists and every relative
link resolves, every subcommand is shown somewhere in the English documentation, every docs page is listed in both
READMEs, and the EfficientNet table is efficientnet_pytorch's own. Each promise is one test, run on every file.

The helpers are in ``readme_checks.py``; ``test_readme_zh.py`` checks that the Chinese README translates the
English one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from readme_checks import (
    README,
    README_ZH,
    ROOT,
    commands_in,
    commands_problems,
    docs_pages,
    documentation,
    efficientnet_table,
    english_documentation,
    link_problems,
    local_images,
    local_links,
    shown_images,
    subparsers,
)

FILES = documentation()
IDS = [path.relative_to(ROOT).as_posix() for path in FILES]


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_every_command_is_accepted_by_the_parser(path: Path) -> None:
    assert not commands_problems(path.read_text())


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_every_link_and_figure_exists(path: Path) -> None:
    assert not link_problems(path.read_text(), path)


def test_the_readme_and_the_docs_show_every_subcommand() -> None:
    shown = {command.split()[1] for path in english_documentation() for command in commands_in(path.read_text())}
    assert shown == set(subparsers())


def test_the_readme_and_the_docs_show_every_figure() -> None:
    figures = {path.relative_to(ROOT).as_posix() for path in (ROOT / "source").iterdir()}
    assert shown_images(english_documentation()) == figures | {"cover.jpg"}


def test_every_docs_page_is_listed_in_both_readmes_and_links_back() -> None:
    assert docs_pages()
    for readme in (README, README_ZH):
        listed = {target.partition("#")[0] for target in local_links(readme.read_text())}
        assert {f"docs/{page.name}" for page in docs_pages()} <= listed, readme.name
    for page in docs_pages():
        title, blank, back = page.read_text().splitlines()[:3]
        assert title.startswith("# ") and not blank and back.startswith("[Back to the README](../README.md)"), page


def docs_page_with(pattern: str) -> tuple[Path, str]:
    """The first docs page whose text matches ``pattern``, and its text."""
    return next((page, page.read_text()) for page in docs_pages() if re.search(pattern, page.read_text()))


def test_a_wrong_command_written_into_a_docs_page_is_caught() -> None:
    """The checks above can fail: the docs page with the most commands, with its first flag misspelt everywhere,
    a value outside a flag's choices and a subcommand that does not exist written into it."""
    page = max(docs_pages(), key=lambda path: len(commands_in(path.read_text())))
    text = page.read_text()
    flag = next(token for command in commands_in(text) for token in command.split() if token.startswith("--"))
    bad = (re.sub(rf"{flag}(?![\w-])", flag + "x", text)
           + "\n```bash\nfgvc train --preset b5\nfgvc server --checkpoint logs/run/last.pt\n```\n")
    assert flag + "x" in bad
    problems = commands_problems(bad)
    assert any(f"{flag}x is not a flag of fgvc" in p for p in problems), (page, problems)
    assert any("b5 for --preset" in p for p in problems), problems
    assert any("server is not a subcommand" in p for p in problems), problems


def test_a_missing_figure_or_section_is_caught() -> None:
    page, text = docs_page_with(r"\(\.\./source/[^)]+\.png\)")
    figure = next(image for image in local_images(text) if image.endswith(".png"))
    missing = figure.replace(".png", ".svg")
    problems = link_problems(text.replace(figure, missing), page)
    assert any(f"{missing} does not exist" in p for p in problems), problems
    readme = README.read_text()
    assert "docs/command-line.md#when-things-go-wrong" in readme
    problems = link_problems(readme.replace("#when-things-go-wrong", "#when-things-go-right"), README)
    assert any("no heading #when-things-go-right in command-line.md" in p for p in problems), problems


def test_the_efficientnet_table_is_efficientnet_pytorchs() -> None:
    from efficientnet_pytorch.utils import efficientnet_params

    tables = {path.name: efficientnet_table(path.read_text()) for path in FILES}
    tables = {name: table for name, table in tables.items() if table}
    assert tables
    for name, table in tables.items():
        assert sorted(table) == [f"B{i}" for i in range(8)], name
        for model, row in table.items():
            assert row == efficientnet_params(f"efficientnet-{model.lower()}"), (name, model)
