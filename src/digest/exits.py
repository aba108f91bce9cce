"""The exit statuses of the `digest` command, in one place: the CLI exits with them, the scheduler logs
them, and `digest --help` and the README describe them from `DESCRIPTIONS` (cron and systemd read them).
"""

from __future__ import annotations

from .reports import BuildReport, RunReport

OK = 0
ERROR = 1  # bad config, unusable state, or (for `check`) any problem found
USAGE = 2  # click's own
CONTENT_ERRORS = 3  # some articles (or subscribers) were skipped; everything else went out
DELIVERY_FAILED = 4  # some deliveries failed, were deferred, or were left when delivery stopped
NOTHING_NEW = 5  # `run`: nothing new to send

DESCRIPTIONS: dict[int, str] = {
    OK: "done: the feeds are built, the digest was sent (check: nothing is wrong)",
    ERROR: "error: the config or the state cannot be used (one `Error: …` line says why); "
    "check found problems",
    USAGE: "usage error",
    CONTENT_ERRORS: "some articles (or, for run, subscribers) could not be used and were skipped, each "
    "listed on its own line; everything else was published",
    DELIVERY_FAILED: "some deliveries failed: refused (5xx, final), deferred (4xx) or left when delivery "
    "stopped; the next run retries the deferred and the left ones",
    NOTHING_NEW: "run: nothing new to send",
}


def build_status(report: BuildReport) -> int:
    return CONTENT_ERRORS if report.problems else OK


def run_status(report: RunReport) -> int:
    """Failed deliveries first, then skipped content, then idle."""
    if report.failed or report.deferred or report.left:
        return DELIVERY_FAILED
    if report.problems:
        return CONTENT_ERRORS
    return NOTHING_NEW if report.nothing_new else OK
