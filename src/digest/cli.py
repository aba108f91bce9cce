"""The command line: parse options, call one function of `jobs.py` per command, print what happened.

The exit statuses are `exits.py`'s; `digest --help` lists them from there, and the README's CLI
reference is generated from `--help` (cog), so the three cannot disagree.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import sys
import textwrap
from pathlib import Path
from typing import Any

import click

from . import DISTRIBUTION, exits
from .config import Config, load_config
from .errors import DigestError
from .reports import count


class _Now(click.ParamType):  # type: ignore[type-arg]
    """An ISO 8601 time; a naive one is taken in the site timezone later, so it stays naive here."""

    name = "ISO-8601"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> dt.datetime:
        if isinstance(value, dt.datetime):
            return value
        try:
            moment = dt.datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 time such as 2025-06-30T08:00:00+08:00", param, ctx)
        if not 1900 <= moment.year <= 9000:  # a week before or after must still be a date
            self.fail(f"{value!r} is not between the years 1900 and 9000", param, ctx)
        return moment


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
        label = "skipped" if getattr(problem, "skipped", True) else "problem"
        click.echo(f"{label}: {problem}", err=True)


_EPILOG = "\b\nExit status:\n" + "\n".join(
    textwrap.fill(meaning, 76, initial_indent=f"  {status}  ", subsequent_indent="     ")
    for status, meaning in exits.DESCRIPTIONS.items()
)


class _Commands(click.Group):
    """Every DigestError a command raises becomes click's one `Error: …` line and exit status 1; so does
    a state database that fails where no step expected it (a disk error on a read), naming the file."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DigestError as exc:
            raise click.ClickException(str(exc)) from None
        except sqlite3.Error as exc:
            config = (ctx.obj or {}).get("config")
            where = f"{config.state.path}: " if config is not None else ""
            raise click.ClickException(f"{where}the state database failed: {exc}") from None


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
@click.version_option(package_name=DISTRIBUTION)
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
    skipped = f"; {count(len(report.problems), 'problem')}" if report.problems else ""
    click.echo(report.summary() + skipped)
    ctx.exit(exits.build_status(report))


@main.command(short_help="Validate the config and every article.")
@NOW_OPTION
@click.pass_context
def check(ctx: click.Context, now: dt.datetime | None) -> None:
    """Validate the config and every article; list every problem (exit 1 when there is any), else the
    next three firings of each schedule after NOW."""
    from . import jobs

    config = _config(ctx)
    notes: list[str] = []
    problems = jobs.check(config, notes)
    for note in notes:  # worth knowing, never a failure (a Hugo site's undated pages, say)
        click.echo(f"note: {note}")
    for problem in problems:
        click.echo(str(problem))
    if problems:
        click.echo(count(len(problems), "problem"), err=True)
        ctx.exit(exits.ERROR)
    click.echo("config and articles OK")
    for line in jobs.schedule_lines(config, _resolve_now(now, config)):
        click.echo(line)


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
    ctx.exit(exits.run_status(report))


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


@main.command(short_help="Write a starting config for a Hugo site.")
@click.option(
    "--hugo",
    "hugo_site",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The Hugo site's root folder (where its hugo.toml or config.toml is).",
)
@click.pass_context
def init(ctx: click.Context, hugo_site: Path) -> None:
    """Write --config (default config.toml) for the Hugo site HUGO: its pages and URLs, topics from its
    first taxonomy, a subscribers file, delivery to the outbox. Never overwrites a config."""
    from . import jobs

    for path in jobs.init_hugo(ctx.obj["config_path"], hugo_site):
        click.echo(f"wrote {path}")
    click.echo("next: digest build (the feeds), then add subscribers and digest run")


@main.command(short_help="Run the job on [schedule] cron until stopped.")
@click.pass_context
def schedule(ctx: click.Context) -> None:
    """Run `digest run` on [schedule] cron (site timezone) until SIGTERM or Ctrl-C."""
    from . import scheduler

    config = _config(ctx)
    scheduler.serve(config)


@main.command(short_help="Serve the subscriber pages ([server]).")
@click.pass_context
def serve(ctx: click.Context) -> None:
    """Serve the subscriber pages (subscribe, confirm, preferences, one-click unsubscribe) on waitress
    at [server] host and port until stopped; the signing keys come from [server] secret_env."""
    from . import jobs

    config = _config(ctx)
    server = config.server

    def ready() -> None:
        click.echo(
            f"Serving the subscriber pages of {server.public_url} on {server.host}:{server.port} "
            "(Ctrl-C or SIGTERM to stop)",
            err=True,
        )

    jobs.serve(config, lambda: dt.datetime.now(dt.UTC), on_ready=ready)


@main.group(cls=_Commands, short_help="The subscribers in the state database.")
def subscribers() -> None:
    """The subscribers, the suppression list and the consent log, in the state database."""


@subscribers.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@NOW_OPTION
@click.pass_context
def import_subscribers(ctx: click.Context, file: Path, now: dt.datetime | None) -> None:
    """Add the subscribers of FILE (CSV: email,name,topics,language) as confirmed; a suppressed address is
    skipped, an active one keeps what it chose. Exit 3 when a row was skipped."""
    from . import jobs

    config = _config(ctx)
    report = jobs.import_subscribers(config, file, _resolve_now(now, config))
    _report_problems(report.problems)
    click.echo(
        f"imported {file}: {report.added} added, {report.activated} activated, {report.kept} kept, "
        f"{len(report.suppressed)} suppressed (not brought back)"
    )
    ctx.exit(exits.CONTENT_ERRORS if report.problems else exits.OK)


@subscribers.command("export")
@click.option("--consent", is_flag=True, help="The consent log instead: every request, confirmation, change.")
@click.pass_context
def export_subscribers(ctx: click.Context, consent: bool) -> None:
    """Write every subscriber and suppressed address (or the consent log) as CSV to stdout."""
    from . import jobs

    click.echo(jobs.export_subscribers(_config(ctx), consent=consent), nl=False)


@subscribers.command("list")
@click.pass_context
def list_subscribers(ctx: click.Context) -> None:
    """One line per address: its status (active, pending, unsubscribed; suppressed and why) and topics."""
    from . import jobs

    for address, status, topics, reason in jobs.list_subscribers(_config(ctx)):
        shown = f"suppressed ({reason})" if reason else status
        click.echo(f"{address}  {shown}  {'; '.join(sorted(topics)) or 'all topics'}")


@subscribers.command("remove")
@click.argument("address")
@NOW_OPTION
@click.pass_context
def remove_subscriber(ctx: click.Context, address: str, now: dt.datetime | None) -> None:
    """Unsubscribe ADDRESS for good: it is suppressed, and no import brings it back."""
    from . import jobs

    config = _config(ctx)
    key, removed = jobs.remove_subscriber(config, address, _resolve_now(now, config))
    click.echo(f"removed {key}: no more mail goes to it" if removed else f"{key} was already suppressed")


@main.command(short_help="Suppress the addresses that bounce (mbox or Maildir).")
@click.argument("path", type=click.Path(path_type=Path))
@NOW_OPTION
@click.pass_context
def bounces(ctx: click.Context, path: Path, now: dt.datetime | None) -> None:
    """Read the bounce reports in PATH (an mbox file or a Maildir folder): a hard bounce or a spam
    complaint (ARF) suppresses its address, and so do soft bounces in 3 of the last 5 digests."""
    from . import jobs

    config = _config(ctx)
    summary = jobs.read_bounces(config, path, _resolve_now(now, config))
    _report_problems(summary.unmatched)
    complaints = f", {count(summary.complaints, 'complaint')}" if summary.complaints else ""
    click.echo(
        f"read {count(summary.read, 'report')}: {count(summary.hard, 'hard bounce')}, "
        f"{count(summary.soft, 'soft bounce')}{complaints}"
    )
    for address, reason in summary.suppressed:
        click.echo(f"suppressed: {address} ({reason})")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
