"""Every ``fgvc ...`` command and flag the README shows is one the parser accepts; every figure it shows
exists and every relative link resolves; its EfficientNet table is efficientnet_pytorch's own.

The helpers (``readme_checks.py``) take a README's text, so ``test_readme_zh.py`` checks the Chinese README with
the same code."""

from __future__ import annotations

import pytest
from readme_checks import (
    README,
    command_problems,
    efficientnet_table,
    link_problems,
    local_images,
    readme_commands,
    subparsers,
)

COMMANDS = readme_commands()


def test_the_readme_shows_every_subcommand() -> None:
    assert len(COMMANDS) >= 15
    assert {c.split()[1] for c in COMMANDS} == set(subparsers())


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_is_accepted_by_the_parser(command: str) -> None:
    assert not command_problems(command)


def test_the_readme_figures_and_links_exist() -> None:
    text = README.read_text()
    assert "source/scaling.png" in local_images(text) and "cover.jpg" in local_images(text)
    assert not link_problems(text, README)


def test_the_efficientnet_table_is_efficientnet_pytorchs() -> None:
    from efficientnet_pytorch.utils import efficientnet_params

    table = efficientnet_table(README.read_text())
    assert sorted(table) == [f"B{i}" for i in range(8)]
    for name, row in table.items():
        assert row == efficientnet_params(f"efficientnet-{name.lower()}"), name
