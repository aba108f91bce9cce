"""The command line: parse options, call one function per command, print what happened.

Exit status (documented in the README; cron and systemd read it):
  0  done: feeds built, the digest sent (or nothing was wrong, for `check`)
  1  error: bad config, unusable state, or (for `check`) any problem found
  2  usage error (click)
  3  some articles were skipped as unreadable; everything else was published
  4  some deliveries failed: refused (5xx, final), deferred (4xx) or left when delivery stopped;
     the next run retries the deferred and the left ones
  5  nothing new to send (`run` only)
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import click

from .config import Config, load_config
from .errors import DigestError

EXIT_ERROR = 1  # the CLI's own; the job's statuses (0, 3, 4, 5) are weekly.EXIT_*


class _Now(click.ParamType):  # type: ignore[type-arg]
    """An ISO 8601 time; a naive one is taken in the site timezone later, so it stays naive here."""

    name = "ISO-8601"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> dt.datetime:
        if isinstance(value, dt.datetime):
            return value
        try:
            return dt.datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 time such as 2025-06-30T08:00:00+08:00", param, ctx)


NOW_OPTION = click.option(
    "--now",
    type=_Now(),
    default=None,
    help="Act as if it were this time (ISO 8601; naive = site timezone). Default: the current time.",
)


def _resolve_now(now: dt.datetime | None, config: Config) -> dt.datetime:
    return dt.datetime.now(dt.UTC) if now is None else config.site.localize(now)


def _config(ctx: click.Context) -> Config:
    config: Config | None = ctx.obj.get("config")
    if config is None:
        config = load_config(ctx.obj["config_path"])
        ctx.obj["config"] = config
    return config


def _report_problems(problems: list[Any]) -> None:
    for problem in problems:
        click.echo(f"skipped: {problem}", err=True)


_EPILOG = """\b
Exit status: 0 done; 1 error (config, state, or problems found by check);
2 usage; 3 some articles skipped as unreadable; 4 some deliveries failed;
5 nothing new to send (run)."""


class _Commands(click.Group):
    """Every DigestError a command raises becomes click's one `Error: …` line and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DigestError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]}, epilog=_EPILOG)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("config.toml"),
    envvar="DIGEST_CONFIG",
    show_default=True,
    help="The configuration file (env DIGEST_CONFIG).",
)
@click.version_option(package_name="digest")
@click.pass_context
def main(ctx: click.Context, config_path: Path) -> None:
    """digest: per-topic Atom feeds and a weekly email digest from a folder of Markdown articles."""
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path


@main.command(short_help="Write the Atom feeds.")
@NOW_OPTION
@click.pass_context
def build(ctx: click.Context, now: dt.datetime | None) -> None:
    """Write the Atom feeds of the articles published at NOW into [feeds] dir."""
    from . import jobs

    config = _config(ctx)
    report = jobs.build(config, _resolve_now(now, config))
    _report_problems(report.problems)
    skipped = f"; {jobs.count(len(report.problems), 'article')} skipped" if report.problems else ""
    click.echo(report.summary() + skipped)
    if report.problems:
        # Imported here, not at the top: weekly loads the digest's modules (~0.3 s) that a build,
        # and `digest --help`, should not pay for.
        from .weekly import EXIT_CONTENT_ERRORS

        ctx.exit(EXIT_CONTENT_ERRORS)


@main.command(short_help="Validate the config and every article.")
@click.pass_context
def check(ctx: click.Context) -> None:
    """Validate the config and every article; list every problem (exit 1 when there is any)."""
    from . import jobs

    config = _config(ctx)
    problems = jobs.check(config)
    for problem in problems:
        click.echo(str(problem))
    if problems:
        click.echo(jobs.count(len(problems), "problem"), err=True)
        ctx.exit(EXIT_ERROR)
    click.echo("config and articles OK")


@main.command(short_help="Run the whole job once: feeds, digest, delivery.")
@NOW_OPTION
@click.pass_context
def run(ctx: click.Context, now: dt.datetime | None) -> None:
    """The whole job once: collect, build feeds, compose the digest of what is new, deliver, record."""
    from . import jobs

    config = _config(ctx)
    report = jobs.run(config, _resolve_now(now, config))
    _report_problems(report.problems)
    for line in report.summary_lines():
        click.echo(line)
    ctx.exit(report.exit_code())


@main.command()
@NOW_OPTION
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the next digest's HTML to this file.",
)
@click.option("--serve", is_flag=True, help="Serve the preview on 127.0.0.1 and re-render on every change.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="Port for --serve on 127.0.0.1 (0: any free port).",
)
@click.pass_context
def preview(ctx: click.Context, now: dt.datetime | None, out: Path | None, serve: bool, port: int) -> None:
    """Show the digest that would go out next, recording nothing."""
    from . import preview as previewing

    if serve == (out is not None):
        raise click.UsageError("give exactly one of --out FILE or --serve")
    config = _config(ctx)
    if serve:
        previewing.serve(config.path, port, now=_resolve_now(now, config) if now else None)
        return
    assert out is not None
    result = previewing.write_preview(config, _resolve_now(now, config), out)
    for note in result.notes:
        click.echo(note)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"wrote {out}")


@main.command(short_help="Run the job on [schedule] cron until stopped.")
@click.pass_context
def schedule(ctx: click.Context) -> None:
    """Run `digest run` on [schedule] cron (site timezone) until SIGTERM or Ctrl-C."""
    from . import scheduler

    config = _config(ctx)
    scheduler.serve(config)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
