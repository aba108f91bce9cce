"""`[schedule] cron` is crontab(5): a table of expressions and their next firings, DST days included, and
`digest check` listing the next three firings of each schedule (cron.py)."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.cron import make_trigger, next_firings, run_trigger
from digest.errors import ConfigError

from conftest import Site, article_text

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
TUESDAY = "2026-12-01T12:00:00+08:00"  # Tuesday 1 December 2026, noon in Shanghai
SPRING = "2026-03-07T12:00:00-05:00"  # New York: the clocks skip 02:00-03:00 on Sunday 8 March 2026
AUTUMN = "2026-10-31T12:00:00-04:00"  # New York: the clocks pass 01:00-02:00 twice on Sunday 1 November


# (expression, timezone, after, the next three firings), each worked out by hand from crontab(5).
TABLE = [
    (
        "0 8 * * mon",
        SHANGHAI,
        TUESDAY,
        ("2026-12-07T08:00:00+08:00", "2026-12-14T08:00:00+08:00", "2026-12-21T08:00:00+08:00"),
    ),
    # Both day fields restricted: either matches (every Monday, and the 1st and the 15th, a Tuesday).
    (
        "0 8 1,15 * mon",
        SHANGHAI,
        TUESDAY,
        ("2026-12-07T08:00:00+08:00", "2026-12-14T08:00:00+08:00", "2026-12-15T08:00:00+08:00"),
    ),
    (
        "0 8 13 * fri",
        SHANGHAI,
        TUESDAY,
        ("2026-12-04T08:00:00+08:00", "2026-12-11T08:00:00+08:00", "2026-12-13T08:00:00+08:00"),
    ),
    # A day field that starts with `*` is unrestricted: both must match (Mondays on odd days).
    (
        "0 8 */2 * mon",
        SHANGHAI,
        TUESDAY,
        ("2026-12-07T08:00:00+08:00", "2026-12-21T08:00:00+08:00", "2027-01-11T08:00:00+08:00"),
    ),
    (
        "*/15 * * * *",
        SHANGHAI,
        TUESDAY,
        ("2026-12-01T12:15:00+08:00", "2026-12-01T12:30:00+08:00", "2026-12-01T12:45:00+08:00"),
    ),
    (
        "0 9-17/4 * * *",
        SHANGHAI,
        TUESDAY,
        ("2026-12-01T13:00:00+08:00", "2026-12-01T17:00:00+08:00", "2026-12-02T09:00:00+08:00"),
    ),
    (
        "30 8 * * 1-5",
        SHANGHAI,
        TUESDAY,
        ("2026-12-02T08:30:00+08:00", "2026-12-03T08:30:00+08:00", "2026-12-04T08:30:00+08:00"),
    ),
    (
        "0 22 * * 1-5",
        SHANGHAI,
        TUESDAY,
        ("2026-12-01T22:00:00+08:00", "2026-12-02T22:00:00+08:00", "2026-12-03T22:00:00+08:00"),
    ),
    # 0 and 7 are both Sunday; 5-7 is Friday to Sunday.
    (
        "0 8 * * 7",
        SHANGHAI,
        TUESDAY,
        ("2026-12-06T08:00:00+08:00", "2026-12-13T08:00:00+08:00", "2026-12-20T08:00:00+08:00"),
    ),
    (
        "0 8 * * 0",
        SHANGHAI,
        TUESDAY,
        ("2026-12-06T08:00:00+08:00", "2026-12-13T08:00:00+08:00", "2026-12-20T08:00:00+08:00"),
    ),
    (
        "0 8 * * 5-7",
        SHANGHAI,
        TUESDAY,
        ("2026-12-04T08:00:00+08:00", "2026-12-05T08:00:00+08:00", "2026-12-06T08:00:00+08:00"),
    ),
    # Names, in any case, with lists and steps.
    (
        "0 8 * * sat,sun",
        SHANGHAI,
        TUESDAY,
        ("2026-12-05T08:00:00+08:00", "2026-12-06T08:00:00+08:00", "2026-12-12T08:00:00+08:00"),
    ),
    (
        "0 12 * * MON-FRI/2",
        SHANGHAI,
        TUESDAY,
        ("2026-12-02T12:00:00+08:00", "2026-12-04T12:00:00+08:00", "2026-12-07T12:00:00+08:00"),
    ),
    (
        "0 0 1 jan,jul *",
        SHANGHAI,
        TUESDAY,
        ("2027-01-01T00:00:00+08:00", "2027-07-01T00:00:00+08:00", "2028-01-01T00:00:00+08:00"),
    ),
    (
        "0 8 29 2 *",
        SHANGHAI,
        TUESDAY,
        ("2028-02-29T08:00:00+08:00", "2032-02-29T08:00:00+08:00", "2036-02-29T08:00:00+08:00"),
    ),
    # crontab's nicknames; @weekly is Sunday at midnight.
    (
        "@weekly",
        SHANGHAI,
        TUESDAY,
        ("2026-12-06T00:00:00+08:00", "2026-12-13T00:00:00+08:00", "2026-12-20T00:00:00+08:00"),
    ),
    (
        "@daily",
        SHANGHAI,
        TUESDAY,
        ("2026-12-02T00:00:00+08:00", "2026-12-03T00:00:00+08:00", "2026-12-04T00:00:00+08:00"),
    ),
    (
        "@MONTHLY",
        SHANGHAI,
        TUESDAY,
        ("2027-01-01T00:00:00+08:00", "2027-02-01T00:00:00+08:00", "2027-03-01T00:00:00+08:00"),
    ),
    # Six fields: seconds first.
    (
        "15 30 9 * * *",
        SHANGHAI,
        TUESDAY,
        ("2026-12-02T09:30:15+08:00", "2026-12-03T09:30:15+08:00", "2026-12-04T09:30:15+08:00"),
    ),
    # DST in the site timezone. A set time the clocks skip runs right after the jump, once.
    (
        "30 2 * * *",
        NEW_YORK,
        SPRING,
        ("2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00", "2026-03-10T02:30:00-04:00"),
    ),
    (
        "15,45 2 * * *",
        NEW_YORK,
        SPRING,
        ("2026-03-08T03:00:00-04:00", "2026-03-09T02:15:00-04:00", "2026-03-09T02:45:00-04:00"),
    ),
    # Same wall-clock time, one hour less in UTC, after the change.
    (
        "0 8 * * sun",
        NEW_YORK,
        "2026-03-01T09:00:00-05:00",
        ("2026-03-08T08:00:00-04:00", "2026-03-15T08:00:00-04:00", "2026-03-22T08:00:00-04:00"),
    ),
    # An hourly job keeps to the clock: there is no 02:00 that day.
    (
        "0 * * * *",
        NEW_YORK,
        "2026-03-08T00:30:00-05:00",
        ("2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00"),
    ),
    # A set time the clocks pass twice runs once; an hourly job runs in both passes.
    (
        "30 1 * * *",
        NEW_YORK,
        AUTUMN,
        ("2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00", "2026-11-03T01:30:00-05:00"),
    ),
    (
        "0 * * * *",
        NEW_YORK,
        "2026-11-01T00:30:00-04:00",
        ("2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00"),
    ),
    (
        "*/30 1 * * *",
        NEW_YORK,
        "2026-11-01T00:50:00-04:00",
        ("2026-11-01T01:00:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-01T01:00:00-05:00"),
    ),
]


@pytest.mark.parametrize(
    ("expression", "tz", "after", "expected"), TABLE, ids=[f"{r[0]}@{r[2]}" for r in TABLE]
)
def test_next_firings_follow_crontab(
    expression: str, tz: ZoneInfo, after: str, expected: tuple[str, str, str]
) -> None:
    fires = next_firings(make_trigger(expression, tz), dt.datetime.fromisoformat(after), 3)
    assert tuple(fire.isoformat() for fire in fires) == expected
    assert all(fire.tzinfo is tz for fire in fires)  # in the site timezone, as `digest check` prints them


def test_next_firings_are_strictly_after_and_what_apscheduler_is_told() -> None:
    trigger = make_trigger("0 8 * * mon", SHANGHAI)
    monday = dt.datetime(2026, 12, 7, 8, 0, tzinfo=SHANGHAI)
    assert next_firings(trigger, monday, 1) == [monday + dt.timedelta(days=7)]
    assert next_firings(trigger, monday - dt.timedelta(microseconds=1), 1) == [monday]
    # APScheduler asks with (previous fire, now): none yet means at or after now.
    assert trigger.get_next_fire_time(None, monday) == monday
    assert trigger.get_next_fire_time(monday, monday) == monday + dt.timedelta(days=7)
    # A previous fire long past (the machine was off): the next one after it, for misfire handling.
    late = monday + dt.timedelta(days=30)
    assert trigger.get_next_fire_time(monday, late) == monday + dt.timedelta(days=7)


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("0 8 * *", "must have 5 fields"),
        ("0 8 * * * * *", "must have 5 fields"),
        ("@reboot", "must have 5 fields"),
        ("0 25 * * mon", "not a valid cron expression: '0 25 * * mon': bad hour"),
        ("0 8 * * 9", "not a valid cron expression: '0 8 * * 9': bad day-of-week"),
        ("60 8 * * *", "bad minute"),
        ("0 8 30 2 *", "bad day-of-month"),  # 30 February never comes
        ("0 8 * * funday", "bad day-of-week"),
        ("0 8 5-1 * *", "bad day-of-month"),
    ],
)
def test_a_bad_cron_is_a_config_error_naming_the_key(cron: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        make_trigger(cron, SHANGHAI, key="schedule.feeds_cron")
    assert caught.value.key == "schedule.feeds_cron"


# ---------------------------------------------------------------- `digest check`


def test_check_prints_the_next_three_firings_of_each_schedule(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.write_config('[schedule]\ncron = "0 8 1,15 * mon"\nfeeds_cron = "*/15 * * * *"\n')
    site.add("a.md", article_text(title="A"))
    monkeypatch.chdir(site.root)
    result = CliRunner().invoke(main, ["check", "--now", TUESDAY])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "config and articles OK",
        "next runs: 2026-12-07T08:00:00+08:00, 2026-12-14T08:00:00+08:00, 2026-12-15T08:00:00+08:00",
        "next feed builds: 2026-12-01T12:15:00+08:00, 2026-12-01T12:30:00+08:00, 2026-12-01T12:45:00+08:00",
    ]
    # The scheduler is handed the same trigger.
    trigger = run_trigger(site.config())
    assert [f.isoformat() for f in next_firings(trigger, dt.datetime.fromisoformat(TUESDAY))] == [
        "2026-12-07T08:00:00+08:00",
        "2026-12-14T08:00:00+08:00",
        "2026-12-15T08:00:00+08:00",
    ]


def test_check_reads_a_naive_now_in_the_site_timezone(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    site.write_config('[schedule]\ncron = "30 2 * * sun"\n')
    site.set("site", timezone="America/New_York")
    monkeypatch.chdir(site.root)
    result = CliRunner().invoke(main, ["check", "--now", "2026-03-01T03:00:00"])
    assert result.exit_code == 0, result.output
    # 2026-03-08 02:30 never happens in New York: that run is at 03:00, right after the jump.
    assert result.stdout.splitlines()[1:] == [
        "next runs: 2026-03-08T03:00:00-04:00, 2026-03-15T02:30:00-04:00, 2026-03-22T02:30:00-04:00"
    ]
