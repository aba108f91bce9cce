"""The README's generated parts are what the code says today."""

from __future__ import annotations

from cogapp import Cog

from conftest import PROJECT


def test_the_cli_reference_in_the_readme_is_current(capsys: object) -> None:
    """`cog --check` regenerates the `--help` blocks and compares; run `cog -r README.md` to update."""
    status = Cog().main(["cog", "--check", "--diff", str(PROJECT / "README.md")])
    assert status == 0, "README.md is stale: run .venv/bin/cog -r README.md"


def test_the_module_table_lists_every_module() -> None:
    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("| module | |") :].split("\n\n", 1)[0]
    listed = sorted(line.split("`")[1] for line in table.splitlines() if line.startswith("| `"))
    modules = sorted(p.name for p in (PROJECT / "src" / "digest").glob("*.py") if p.name != "__init__.py")
    assert listed == modules
