"""The Chinese README (README.zh-CN.md) is kept true like the English one, with readme_checks.py's helpers:
its commands parse, its figures and links exist, and its results cannot disagree with the English README's.

"Results" are the Markdown table rows under a results heading: a heading whose text starts with ``Results``
(English) or ``结果`` (Chinese), down to the next heading of the same or a higher level (its sub-headings
included), e.g. ``## Results`` and a later ``## Results on real photos``. A number is a run of digits (with
``,`` thousands and a ``.`` decimal part) not glued to a Latin letter on its left, so ``B4`` and ``Lite0`` are
names, not numbers. The numbers of all results table rows of the two READMEs must be the same set."""

from __future__ import annotations

import re

import pytest
from readme_checks import (
    README,
    README_ZH,
    command_problems,
    efficientnet_table,
    link_problems,
    local_images,
    local_links,
    readme_commands,
    subparsers,
)

RESULTS_HEADING = re.compile(r"^(#{1,6})\s+(?:Results|结果)", re.M)
NUMBER = re.compile(r"(?<![A-Za-z0-9.,])\d+(?:,\d{3}(?!\d))*(?:\.\d+)?")


def results_rows(text: str) -> list[str]:
    """The table rows (header and ``| --- |`` rows excepted) of every results section of a README."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    rows: list[str] = []
    for start in RESULTS_HEADING.finditer(text):
        level = len(start.group(1))
        end = re.compile(rf"^#{{1,{level}}}\s", re.M).search(text, start.end())
        lines = text[start.end():end.start() if end else len(text)].splitlines()
        for index, line in enumerate(lines):
            if not line.startswith("|") or re.fullmatch(r"[|\s:-]+", line):
                continue
            if index + 1 < len(lines) and re.fullmatch(r"\|[\s:-]+\|[|\s:-]*", lines[index + 1]):
                continue  # a table's header row
            rows.append(line)
    return rows


def results_numbers(text: str) -> set[str]:
    return {number for row in results_rows(text) for number in NUMBER.findall(row)}


def results_problems(zh: str, en: str) -> list[str]:
    """Numbers in one README's results tables that the other's results tables lack."""
    zh_numbers, en_numbers = results_numbers(zh), results_numbers(en)
    return ([f"README.zh-CN.md's results give {n}, not in README.md's results tables"
             for n in sorted(zh_numbers - en_numbers)]
            + [f"README.md's results give {n}, missing from README.zh-CN.md's results tables"
               for n in sorted(en_numbers - zh_numbers)])


ZH = README_ZH.read_text()
EN = README.read_text()
COMMANDS = readme_commands(ZH)


def test_the_chinese_readme_shows_every_subcommand() -> None:
    assert len(COMMANDS) >= 15
    assert {c.split()[1] for c in COMMANDS} == set(subparsers())


@pytest.mark.parametrize("command", COMMANDS)
def test_chinese_readme_command_is_accepted_by_the_parser(command: str) -> None:
    assert not command_problems(command)


def test_a_flag_that_does_not_exist_is_caught() -> None:
    """The check above can fail: the Chinese README with its first flag misspelt everywhere, a value outside a
    flag's choices, and a subcommand that does not exist."""
    flag = next(token for command in COMMANDS for token in command.split() if token.startswith("--"))
    bad = (re.sub(rf"{flag}(?![\w-])", flag + "x", ZH).replace("--preset b4", "--preset b5", 1)
           .replace("fgvc serve", "fgvc server", 1))
    assert flag + "x" in bad and "--preset b5" in bad and "fgvc server" in bad
    problems = [p for command in readme_commands(bad) for p in command_problems(command)]
    assert any(f"{flag}x is not a flag of fgvc" in p for p in problems), problems
    assert any("b5 for --preset" in p for p in problems), problems
    assert any("server is not a subcommand" in p for p in problems), problems


def test_the_two_readmes_link_to_each_other_at_the_top() -> None:
    assert "[简体中文](README.zh-CN.md)" in EN.split("\n#", 1)[0]
    assert "[English](README.md)" in ZH.split("\n#", 1)[0]


def test_the_chinese_readme_figures_and_links_exist() -> None:
    assert not link_problems(ZH, README_ZH)
    assert any(link.startswith("README.md#") for link in local_links(ZH))


def test_a_missing_figure_or_section_is_caught() -> None:
    bad = ZH.replace("source/scaling.png", "source/scaling.svg").replace("README.md#speed", "README.md#sped")
    problems = link_problems(bad, README_ZH)
    assert any("source/scaling.svg does not exist" in p for p in problems), problems
    assert any("no heading #sped in README.md" in p for p in problems), problems


def test_the_chinese_readme_shows_every_figure_of_the_english_one() -> None:
    assert set(local_images(EN)) <= set(local_images(ZH))


def test_the_results_are_the_english_readmes() -> None:
    assert results_rows(ZH) and results_rows(EN)
    assert not results_problems(ZH, EN)


def test_a_differing_result_is_caught() -> None:
    """A number changed in one Chinese results row, and a new English results section that the Chinese README
    lacks, are both reported; a number outside the results sections is not a result."""
    row, number = next((r, n) for r in results_rows(ZH) for n in NUMBER.findall(r) if "." in n)
    bad = ZH.replace(row, row.replace(number, number + "7", 1))
    assert bad != ZH
    assert any(f"give {number}7, not in README.md" in p for p in results_problems(bad, EN))
    new_section = "\n## Results on real photos\n\n| model | top-1 |\n| --- | --- |\n| B4 | 87.3 % |\n"
    assert any("give 87.3, missing from README.zh-CN.md" in p for p in results_problems(ZH, EN + new_section))
    zh_section = "\n## 结果：真实照片\n\n| 模型 | top-1 |\n| --- | --- |\n| B4 | 87.3 % |\n"
    assert not results_problems(ZH + zh_section, EN + new_section)
    assert not results_problems(ZH + "\n## 其他\n\n| a |\n| --- |\n| 12.5 % |\n", EN)


def test_the_chinese_efficientnet_table_is_efficientnet_pytorchs() -> None:
    from efficientnet_pytorch.utils import efficientnet_params

    table = efficientnet_table(ZH)
    assert sorted(table) == [f"B{i}" for i in range(8)]
    for name, row in table.items():
        assert row == efficientnet_params(f"efficientnet-{name.lower()}"), name
    assert table == efficientnet_table(EN)
