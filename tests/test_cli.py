"""The command line, through click's CliRunner: the exact lines a user sees and the exit status."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from digest.cli import main

from conftest import NOW_ISO, PROJECT, Site, article_text


@pytest.fixture
def runner(site: Site, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(site.root)
    return CliRunner()


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("build", "check", "run", "preview", "schedule"):
        assert f"  {command} " in result.output


def test_the_distribution_is_digest_publisher_and_the_command_digest() -> None:
    from importlib.metadata import distribution

    from digest import __version__

    installed = distribution("digest-publisher")  # "digest" on PyPI is another project
    assert installed.version == __version__
    assert [(e.name, e.value) for e in installed.entry_points] == [("digest", "digest.cli:main")]
    result = CliRunner().invoke(main, ["--version"], prog_name="digest")
    assert result.output == f"digest, version {__version__}\n"


def test_every_command_is_in_the_readme() -> None:
    """Each command's `--help` is in the generated reference (test_readme keeps it current)."""
    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    for command in main.commands:
        assert f"Usage: digest {command} [OPTIONS]" in readme


def test_build_writes_feeds_and_says_so(runner: CliRunner, site: Site) -> None:
    site.add("a.md", article_text(title="A", main_topics=["T"]))
    result = runner.invoke(main, ["build", "--now", NOW_ISO])
    assert result.exit_code == 0, result.output
    assert result.output == "1 of 1 article published in 2 feeds; 4 files changed\n"
    again = runner.invoke(main, ["build", "--now", NOW_ISO])
    assert again.output == "1 of 1 article published in 2 feeds; no file changed\n"


def test_build_with_a_broken_article_publishes_the_rest_and_exits_3(runner: CliRunner, site: Site) -> None:
    site.add("good.md", article_text(title="Good"))
    site.add("bad.md", "---\ntitle: Bad\ndate: someday\n---\n")
    result = runner.invoke(main, ["build", "--now", NOW_ISO])
    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        "skipped: content/bad.md:3: front matter: 'date' is not a date ('someday') "
        "(use ISO 8601, e.g. 2025-06-25T17:10:04+08:00 or 2025-06-25)"
    ]
    assert result.stdout == "1 of 1 article published in 1 feed; 3 files changed; 1 problem\n"
    assert (site.feeds / "index.xml").exists()


def test_a_naive_now_is_in_the_site_timezone(runner: CliRunner, site: Site) -> None:
    site.add("a.md", article_text(title="A", date="2025-06-30T08:00:00+08:00"))
    early = runner.invoke(main, ["build", "--now", "2025-06-30T07:59:59"])
    assert early.output.startswith("0 of 1 article published")
    on_time = runner.invoke(main, ["build", "--now", "2025-06-30T08:00:00"])
    assert on_time.output.startswith("1 of 1 article published")


def test_a_bad_now_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(main, ["build", "--now", "next tuesday"])
    assert result.exit_code == 2
    assert "'next tuesday' is not an ISO 8601 time" in result.output


def test_check_lists_every_problem_and_exits_1(runner: CliRunner, site: Site) -> None:
    site.add("good.md", article_text(title="Good"))
    site.add("no-title.md", "---\ndate: 2025-06-01\n---\n")
    site.add("bad-draft.md", "---\ntitle: T\ndate: 2025-06-01\ndraft: maybe\n---\n")
    result = runner.invoke(main, ["check"])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "content/bad-draft.md:4: front matter: 'draft' must be true or false, not 'maybe'",
        "content/no-title.md:2: front matter: 'title' is missing (add a 'title:' line)",
    ]
    assert result.stderr == "2 problems\n"


def test_check_passes_on_the_shipped_seeds() -> None:
    result = CliRunner().invoke(
        main, ["--config", str(PROJECT / "config.toml"), "check", "--now", "2026-12-01T12:00:00+08:00"]
    )
    assert result.exit_code == 0, result.output
    assert result.output == (
        "config and articles OK\n"
        "next runs: 2026-12-07T08:00:00+08:00, 2026-12-14T08:00:00+08:00, 2026-12-21T08:00:00+08:00\n"
    )


def test_a_config_error_is_one_line_naming_the_key(runner: CliRunner, site: Site) -> None:
    site.set("feeds", max_entires=10)
    result = runner.invoke(main, ["build"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: config.toml: unknown key 'feeds.max_entires' (known keys: ")


def test_a_missing_config_file(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--config", "missing.toml", "build"])
    assert result.exit_code == 1
    assert result.stderr == "Error: missing.toml: config file not found (pass --config FILE)\n"


def test_check_also_reports_feed_file_clashes_and_bad_subscribers(runner: CliRunner, site: Site) -> None:
    site.write_config('[feeds.topic_slugs]\n"甲" = "same"\n"乙" = "same"\n[subscribers]\nfile = "subs.csv"\n')
    (site.root / "subs.csv").write_text(
        "email,name\nok@example.com,OK\nnot-an-address,Bad\n", encoding="utf-8"
    )
    site.add("a.md", article_text(title="A", main_topics=["甲"]))
    site.add("b.md", article_text(title="B", main_topics=["乙"], date="2099-01-01"))  # not published yet
    result = runner.invoke(main, ["check"])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert "topics '乙' and '甲' would share the feed file same.xml" in lines[0]
    assert lines[1].startswith("subs.csv:3: ")


def test_check_reports_a_from_without_an_address(runner: CliRunner, site: Site) -> None:
    site.write_config('[subscribers]\nlist = [{ email = "a@example.com" }]\n')
    site.set("digest", **{"from": "nobody"})
    site.add("a.md", article_text(title="A"))
    result = runner.invoke(main, ["check"])
    assert result.exit_code == 1
    assert "'digest.from' has no email address: 'nobody'" in result.stdout


def test_preview_flags_are_checked_before_the_config_is_read(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--config", "missing.toml", "preview"])
    assert result.exit_code == 2
    assert "give exactly one of --out FILE or --serve" in result.output


def test_check_reports_a_cron_that_digest_schedule_would_refuse(runner: CliRunner, site: Site) -> None:
    site.write_config('[schedule]\ncron = "0 25 * * mon"\n')
    site.add("a.md", article_text(title="A"))
    result = runner.invoke(main, ["check"])
    assert result.exit_code == 1
    assert "'schedule.cron' is not a valid cron expression: '0 25 * * mon'" in result.stdout
