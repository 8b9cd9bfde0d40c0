"""Docs: every command has help with an example and is documented in the README, and the README
opens with the two commands for a fresh machine that the Makefile and CI run."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexer.cli import cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(cli.list_commands(None)))
def test_every_command_has_help_with_an_example_and_a_readme_section(runner, name):
    result = runner.invoke(cli, [name, "--help"])
    assert result.exit_code == 0
    assert "Example: indexer " + name in result.stdout
    assert f"### `indexer {name} " in README


def test_readme_opens_with_the_demo_and_test_commands_that_ci_runs():
    first_block = README.split("```sh", 1)[1].split("```", 1)[0]
    assert "make demo" in first_block and "make test" in first_block
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "\ndemo:" in makefile and "\ntest:" in makefile
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_format_doc_names_every_section_and_record():
    from indexer.store.index import FORMAT_VERSION, RECORD_NAMES
    from indexer.store.segment import SECTION_NAMES

    spec = (ROOT / "docs" / "FORMAT.md").read_text(encoding="utf-8")
    assert f"version {FORMAT_VERSION}" in spec
    for kind, name in SECTION_NAMES.items():
        assert f"| {kind} | {name} |" in spec
    for kind, name in RECORD_NAMES.items():
        assert f"| {kind} | {name} |" in spec
