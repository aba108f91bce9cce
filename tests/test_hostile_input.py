"""Input that must not crash or hang a command (issue 10): each one article is reported and skipped, with
its file and line, and the others publish; file names are shown escaped; a `--now` out of range is a
usage error."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.content import collect
from digest.jobs import build

from conftest import NOW, NOW_ISO, Site, article_text


def _bomb(field: str) -> str:
    """A billion-laughs document: `field` refers to 9**9 strings through aliases."""
    levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for index, name in enumerate("bcdefghi"):
        previous = "abcdefghi"[index]
        levels.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    levels.append(f"{field}: *i")
    lines = ["---", "title: Bomb"] + ([] if field == "date" else ["date: 2025-06-01"]) + levels + ["---"]
    return "\n".join(lines) + "\nx\n"


def problems_of(site: Site, name: str, content: str | bytes) -> list[str]:
    """Add one hostile file beside a good one; the good one publishes, the problems come back as text."""
    site.add(name, content)
    site.add("good.md", article_text(title="Good"))
    started = time.perf_counter()
    report = build(site.config(), NOW)
    assert time.perf_counter() - started < 10
    collection = collect(site.config())
    assert [a.title for a in collection.articles] == ["Good"]
    return [str(p) for p in report.problems]


@pytest.mark.parametrize("field", ["date", "draft", "tags"])
def test_a_yaml_alias_bomb_in_any_field_is_refused_without_expanding_it(
    site: Site, field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(site.root)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    [problem] = problems_of(site, "bomb.md", _bomb(field))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: no gigabytes
    line = 8 if field == "date" else 9  # `f: &f [*e, …]`, 9**6 values, is the first past the limit
    assert problem == (
        f"content/bomb.md:{line}: front matter: YAML: aliases here expand to more than 100000 values "
        "(use fewer anchors and aliases)"
    )
    assert "lol" not in problem


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "deep-json.md",
            '{"title": "Deep", "date": "2025-06-01", "x": ' + "[" * 10_000 + "]" * 10_000 + "}\n\nBody\n",
            "front matter: JSON: nested too deeply",
        ),
        (
            "deep-toml.md",
            '+++\ntitle = "Deep"\ndate = 2025-06-01\nx = ' + "[" * 10_000 + "]" * 10_000 + "\n+++\nBody\n",
            "front matter: TOML: nested too deeply",
        ),
        (
            "deep-table.md",
            '+++\ntitle = "Deep"\ndate = 2025-06-01\nx = '
            + "{a=" * 10_000
            + "1"
            + "}" * 10_000
            + "\n+++\nB\n",
            "front matter: TOML: nested too deeply",
        ),
        (
            "deep-yaml.md",
            "---\ntitle: Deep\ndate: 2025-06-01\nx: " + "[" * 10_000 + "]" * 10_000 + "\n---\nBody\n",
            "content/deep-yaml.md:4: front matter: YAML: exceeded maximum nesting depth",
        ),
        (
            "digits.md",
            "---\ntitle: Digits\ndate: 2025-06-01\nweight: " + "9" * 5000 + "\n---\nBody\n",
            "content/digits.md:4: front matter: YAML: a number of 5000 digits is too long to read",
        ),
        (
            "digits-toml.md",
            '+++\ntitle = "Digits"\ndate = 2025-06-01\nweight = ' + "9" * 5000 + "\n+++\nBody\n",
            "front matter: TOML: a number of 5000 digits is too long to read",
        ),
        (
            "digits-json.md",
            '{"title": "Digits", "date": "2025-06-01", "weight": ' + "9" * 5000 + "}\n\nBody\n",
            "front matter: JSON: a number of 5000 digits is too long to read",
        ),
        (
            "year0.md",
            "---\ntitle: Year zero\ndate: 0000-01-01\n---\nBody\n",
            "content/year0.md:3: front matter: YAML: '0000-01-01' is not a valid date or time "
            "(year 0 is out of range)",
        ),
        (
            "hour25.md",
            "---\ntitle: Late\ndate: 2025-06-20 25:61:61\n---\nBody\n",
            "content/hour25.md:3: front matter: YAML: '2025-06-20 25:61:61' is not a valid date or time "
            "(hour must be in 0..23)",
        ),
        (
            "hour25-string.md",
            "---\ntitle: Late\ndate: '2025-06-20 25:61:61'\n---\nBody\n",
            "content/hour25-string.md:3: front matter: 'date' is not a date ('2025-06-20 25:61:61') "
            "(use ISO 8601, e.g. 2025-06-25T17:10:04+08:00 or 2025-06-25)",
        ),
    ],
)
def test_input_that_used_to_raise_is_one_reported_article(
    site: Site, name: str, content: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(site.root)
    [problem] = problems_of(site, name, content)
    assert expected in problem
    assert problem.startswith(f"content/{name}")


@pytest.mark.parametrize("date", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00"])
def test_dates_at_the_ends_of_the_calendar_neither_crash_nor_publish(
    site: Site, date: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(site.root)
    [problem] = problems_of(site, "edge.md", article_text(title="Edge", date=date))
    assert problem.startswith("content/edge.md:3: front matter: 'date' is not a date")


def test_a_file_name_that_is_not_utf8_is_reported_not_a_traceback(site: Site) -> None:
    name = os.fsdecode(b"caf\xe9.md")
    (site.content / name).write_text(article_text(title="Latin-1 name"), encoding="utf-8")
    site.add("good.md", article_text(title="Good"))
    result = CliRunner().invoke(main, ["--config", str(site.config_path), "build", "--now", NOW_ISO])
    assert result.exit_code == 3, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "caf\\xe9.md: the file name is not UTF-8 (rename the file)" in result.stderr


def test_a_file_name_with_a_newline_cannot_forge_an_output_line(site: Site) -> None:
    site.add("evil\nError: everything is fine.md", "no front matter\n")
    site.add("good.md", article_text(title="Good"))
    for command in (["build", "--now", NOW_ISO], ["check"]):
        result = CliRunner().invoke(main, ["--config", str(site.config_path), *command])
        lines = result.output.splitlines()
        assert not [line for line in lines if line.startswith("Error:")], lines
        assert any("evil\\nError: everything is fine.md" in line for line in lines), lines


@pytest.mark.parametrize("now", ["0001-01-01T00:00:00", "9999-12-31T23:59:59", "0001-01-01T00:00:00+14:00"])
@pytest.mark.parametrize("command", ["build", "run"])
def test_a_now_at_the_ends_of_the_calendar_is_a_usage_error(
    site: Site, now: str, command: str, tmp_path: Path
) -> None:
    site.add("good.md", article_text(title="Good"))
    result = CliRunner().invoke(main, ["--config", str(site.config_path), command, "--now", now])
    assert result.exit_code == 2, result.output
    assert "--now" in result.stderr and "between the years 1900 and 9000" in result.stderr
