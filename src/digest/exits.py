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
    OK: "done (for check: nothing wrong)",
    ERROR: "error: config, state, or (for check) a problem found",
    USAGE: "usage error",
    CONTENT_ERRORS: "some articles or subscribers skipped; the rest went out",
    DELIVERY_FAILED: "some deliveries failed, deferred or left (the next run retries)",
    NOTHING_NEW: "nothing new to send (run)",
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
