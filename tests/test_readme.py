"""The README's generated parts are what the code says today."""

from __future__ import annotations

from cogapp import Cog

from conftest import PROJECT


def test_the_cli_reference_in_the_readme_is_current(capsys: object) -> None:
    """`cog --check` regenerates the `--help` blocks and compares; run `cog -r README.md` to update."""
    status = Cog().main(["cog", "--check", "--diff", str(PROJECT / "README.md")])
    assert status == 0, "README.md is stale: run .venv/bin/cog -r README.md"
