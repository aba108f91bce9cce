"""Cron expressions as `[schedule] cron` and `feeds_cron` write them: crontab(5), in the site timezone.

One trigger object answers "when next" for everyone: the scheduler hands it to APScheduler, and
`digest check` lists its next firings (`next_firings`). The arithmetic is cronsim's, which follows
Debian's cron, quirks included:

- when both day-of-month and day-of-week are restricted (neither starts with `*`), a day matching
  either fires: `0 8 1,15 * mon` runs every Monday *and* on the 1st and the 15th;
- weekdays count from Sunday, 0 or 7 (`1-5` is Monday to Friday); names (`mon`, `jan`) in any case;
- a job at a set time (neither minute nor hour starts with `*`) whose time the clocks skip runs right
  after the jump, and one whose time the clocks pass twice runs once; more frequent jobs keep to the
  clock (nothing in the skipped hour, both passes of the repeated one).

Five fields, or six with seconds first; `@yearly`, `@monthly`, `@weekly`, `@daily` and `@hourly` as in
crontab(5).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from cronsim import CronSim, CronSimError

from .config import Config
from .errors import ConfigError

# crontab(5)'s nicknames; @reboot has no meaning for a scheduler that is already running.
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_TICK = dt.timedelta(microseconds=1)


class CrontabTrigger(BaseTrigger):  # type: ignore[misc]
    """An APScheduler trigger that fires when crontab(5) would, in `timezone`."""

    def __init__(self, expression: str, timezone: ZoneInfo) -> None:
        self.expression = expression
        self.timezone = timezone
        CronSim(expression, dt.datetime(2000, 1, 1, tzinfo=timezone))  # raises CronSimError when invalid

    def get_next_fire_time(self, previous: dt.datetime | None, now: dt.datetime) -> dt.datetime | None:
        """The first fire time after `previous`, as APScheduler asks: at or after `now` when there is no
        previous fire (or the clock went back before it)."""
        start = previous if previous is not None and previous <= now else now - _TICK
        try:  # cronsim counts in whole seconds, strictly after its start
            fire: dt.datetime = next(iter(CronSim(self.expression, start.astimezone(self.timezone))))
        except StopIteration:  # no firing in the next 50 years (`0 0 30 2 *` is refused up front)
            return None
        return fire

    def __str__(self) -> str:
        return f"crontab[{self.expression}, {self.timezone}]"

    def __repr__(self) -> str:
        return f"<CrontabTrigger ({self.expression!r}, timezone={str(self.timezone)!r})>"


def make_trigger(
    expression: str, tz: ZoneInfo, *, key: str = "schedule.cron", path: str = ""
) -> CrontabTrigger:
    """The trigger of "min hour dom mon dow", "sec min hour dom mon dow" or a crontab @nickname."""
    text = " ".join(expression.split())
    text = MACROS.get(text.lower(), text)
    fields = text.split()
    if len(fields) not in (5, 6):
        raise ConfigError(
            f"'{key}' must have 5 fields (minute hour day month weekday) or 6 (second first), "
            f"not {len(fields)}: {expression!r}",
            path=path,
            key=key,
            hint='e.g. "0 8 * * mon" for Mondays at 08:00, or "@weekly"',
        )
    try:
        return CrontabTrigger(text, tz)
    except CronSimError as exc:
        raise ConfigError(
            f"'{key}' is not a valid cron expression: {expression!r}: {str(exc).lower()}", path=path, key=key
        ) from None


def next_firings(trigger: CrontabTrigger, after: dt.datetime, count: int = 3) -> list[dt.datetime]:
    """The first `count` fire times strictly after `after`, in the trigger's timezone."""
    fires: list[dt.datetime] = []
    previous = after
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, previous + _TICK)
        if fire is None:
            break
        fires.append(fire.astimezone(trigger.timezone))
        previous = fire
    return fires


def run_trigger(config: Config) -> CrontabTrigger:
    return make_trigger(config.schedule.cron, config.site.tz, path=str(config.path))


def feeds_trigger(config: Config) -> CrontabTrigger | None:
    """The trigger of the optional feeds rebuild, or None when `[schedule] feeds_cron` is empty."""
    if not config.schedule.feeds_cron:
        return None
    return make_trigger(
        config.schedule.feeds_cron, config.site.tz, key="schedule.feeds_cron", path=str(config.path)
    )


def schedule_lines(config: Config, now: dt.datetime, count: int = 3) -> list[str]:
    """`next runs: …` for `[schedule] cron` and `next feed builds: …` for `feeds_cron`, when set: the next
    `count` firings after `now`, ISO 8601 in the site timezone. Raises ConfigError like the triggers."""
    schedules = [("next runs", run_trigger(config)), ("next feed builds", feeds_trigger(config))]
    return [
        f"{label}: " + ", ".join(fire.isoformat() for fire in next_firings(trigger, now, count))
        for label, trigger in schedules
        if trigger is not None
    ]
