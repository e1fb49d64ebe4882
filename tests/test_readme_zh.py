"""The Chinese README (README.zh-CN.md) is a full translation of the English README.md: the two link to each other
at the top, and the Chinese one gives the same commands, shows every figure of the English one, and its results
cannot disagree with the English README's. (Its commands, links and figures are checked with every other file of
the documentation in ``test_readme.py``; the docs pages stay English.)

"Results" are the Markdown table rows under a results heading: a heading whose text starts with ``Results``
(English) or ``结果`` (Chinese), down to the next heading of the same or a higher level (its sub-headings
included), e.g. ``## Results`` and a later ``## Results on real photos``. A number is a run of digits (with
``,`` thousands and a ``.`` decimal part) not glued to a Latin letter on its left, so ``B4`` and ``Lite0`` are
names, not numbers. The numbers of all results table rows of the two READMEs must be the same set."""

from __future__ import annotations

import re

from readme_checks import README, README_ZH, commands_in, local_images

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


def test_the_two_readmes_link_to_each_other_at_the_top() -> None:
    assert "[简体中文](README.zh-CN.md)" in EN.split("\n#", 1)[0]
    assert "[English](README.md)" in ZH.split("\n#", 1)[0]


def test_the_chinese_readme_has_the_english_readmes_sections() -> None:
    def levels(text: str) -> list[int]:
        text = re.sub(r"```.*?```", "", text, flags=re.S)
        return [len(hashes) for hashes in re.findall(r"^(#{1,6}) ", text, re.M)]

    assert levels(ZH) == levels(EN)


def test_the_chinese_readme_gives_the_english_readmes_commands() -> None:
    assert commands_in(EN) and sorted(commands_in(ZH)) == sorted(commands_in(EN))
    assert re.findall(r"^make \S+", ZH, re.M) == re.findall(r"^make \S+", EN, re.M)


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
