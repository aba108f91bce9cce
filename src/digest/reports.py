"""What `build` and `run` did: the reports the CLI prints, the scheduler logs and tests assert. Plain data.

The exit statuses these reports decide are `exits.py`'s, beside the CLI.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from .errors import Problem

_MAX_LISTED = 20  # failed recipients listed one per line; the rest are counted


@dataclass
class BuildReport:
    """What `build` did, for the CLI to print and for tests to assert."""

    articles: int = 0
    published: int = 0
    feeds: int = 0
    parsed: int = 0
    rendered: int = 0
    problems: list[Problem] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    up_to_date: bool = False  # nothing could have changed, so nothing was rendered

    def summary(self) -> str:
        """`4 of 7 articles published in 8 feeds; 10 files changed`: what `build` and `run` print."""
        changed = len(self.written) + len(self.removed)
        files = f"{count(changed, 'file')} changed" if changed else "no file changed"
        feeds = count(self.feeds, "feed")
        return f"{self.published} of {count(self.articles, 'article')} published in {feeds}; {files}"


def count(number: int, noun: str) -> str:
    """`1 article`, `2 articles`: a number and a regular English noun."""
    return f"{number} {noun}" + ("" if number == 1 else "s")


def feeds_line(build: BuildReport) -> str:
    """What a feeds build did, in the words of `digest build`'s line."""
    return "feeds: " + build.summary()


@dataclass
class RunReport:
    """What `run` did: for the CLI's lines and exit status, the scheduler's log, and tests."""

    now: dt.datetime
    problems: list[Problem] = field(default_factory=list)
    build: BuildReport | None = None
    period: str | None = None  # the digest composed by this run
    articles: int = 0
    recipients: int = 0  # deliveries planned for that digest
    no_match: int = 0  # subscribers whose topics had nothing in it
    renders: int = 0  # distinct renderings (one per distinct topic set that has articles)
    resumed: list[str] = field(default_factory=list)  # unfinished digests this run went back to
    already_sent: str | None = None  # the period's digest was recorded by an earlier run
    transport: str = ""
    sent: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (recipient, reply): final
    deferred: list[tuple[str, str]] = field(default_factory=list)  # 4xx until max_attempts: next run
    cancelled: int = 0  # unsubscribed (or gone) before their message went out
    suppressed: list[str] = field(default_factory=list)  # refused for good (5xx): no more mail to them
    left: int = 0  # not attempted because delivery stopped early
    stopped: str = ""  # why it stopped early ("" when it did not)
    warnings: list[str] = field(default_factory=list)
    archive: list[str] = field(default_factory=list)  # files written under [digest] archive_dir

    @property
    def nothing_new(self) -> bool:
        return self.period is None and not self.resumed

    def summary_lines(self) -> list[str]:
        lines: list[str] = []
        if self.build is not None:
            lines.append(feeds_line(self.build))
        for period in self.resumed:
            lines.append(f"digest {period}: resumed its unfinished delivery")
        if self.period is not None:
            line = (
                f"digest {self.period}: {count(self.articles, 'article')} for "
                f"{count(self.recipients, 'recipient')} ({count(self.renders, 'rendering')})"
            )
            if self.no_match:
                verb = "has" if self.no_match == 1 else "have"
                line += f"; {count(self.no_match, 'subscriber')} {verb} nothing in their topics"
            lines.append(line)
        elif self.already_sent and not self.resumed:
            lines.append(f"digest {self.already_sent} was already sent; nothing more until the next period")
        elif self.nothing_new:
            lines.append("nothing new since the last digest; nothing sent")
        lines.extend(f"warning: {w}" for w in self.warnings)
        if self.transport:
            line = f"delivered via {self.transport}: {self.sent} sent, {len(self.failed)} failed"
            line += f", {len(self.deferred)} deferred"
            if self.cancelled:
                line += f", {self.cancelled} cancelled (unsubscribed)"
            lines.append(line)
        problems = [(r, e, "failed") for r, e in self.failed] + [(r, e, "deferred") for r, e in self.deferred]
        for recipient, error, kind in problems[:_MAX_LISTED]:
            lines.append(f"{kind}: {recipient}: {error}")
        if len(problems) > _MAX_LISTED:
            lines.append(f"… and {len(problems) - _MAX_LISTED} more")
        if self.suppressed:
            n = len(self.suppressed)
            lines.append(
                f"suppressed: {n} {'address' if n == 1 else 'addresses'} refused for good; "
                "nothing more is sent to them"
            )
        if self.deferred:
            deferred = len(self.deferred)
            verb = "is" if deferred == 1 else "are"
            lines.append(f"{count(deferred, 'deferred recipient')} {verb} retried by the next run")
        if self.stopped:
            verb = "is" if self.left == 1 else "are"
            lines.append(
                f"stopped: {self.stopped}; {count(self.left, 'recipient')} {verb} left for the next run"
            )
        if self.problems:
            lines.append(f"{count(len(self.problems), 'problem')} (articles or subscribers skipped)")
        return lines
