"""Cron expressions as `[schedule] cron` and `feeds_cron` write them, turned into APScheduler triggers in
the site timezone. Used by the scheduler to run, and by `digest check` to validate the config.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from .config import Config
from .errors import ConfigError

_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_NUMERIC_DAYS = re.compile(r"^(\*|\d+(?:-\d+)?)(?:/(\d+))?$")


def crontab_days(field: str) -> str:
    """A crontab day-of-week field in APScheduler 3's terms, which counts 0 as Monday, not Sunday.

    Numbers (0 and 7 are Sunday), ranges and steps are expanded to day names, so "1-5" means Monday
    to Friday as it does in crontab(5); names such as "mon-fri" pass through.
    """
    names: list[str] = []
    for item in field.split(","):
        match = _NUMERIC_DAYS.match(item.strip())
        if match is None:
            names.append(item.strip())
            continue
        body, step = match.group(1), int(match.group(2) or 1)
        if body == "*":
            if step == 1:
                names.append("*")
                continue
            low, high = 0, 6
        elif "-" in body:
            low, high = (int(part) for part in body.split("-"))
        else:
            low = int(body)
            high = 6 if match.group(2) else low  # "1/2" in crontab: from Monday on, every other day
        if not (0 <= low <= high <= 7) or step < 1:
            raise ValueError(f"day of week {item!r} is out of range (0-7, 0 and 7 are Sunday)")
        names.extend(_DAYS[day % 7] for day in range(low, high + 1, step))
    return ",".join(dict.fromkeys(names))


class SiteCronTrigger(CronTrigger):  # type: ignore[misc]
    """A CronTrigger that fires once at a wall-clock time the clocks pass twice.

    When clocks go back (01:30 happens twice on the first Sunday of November in New York), APScheduler
    3 fires at both; here a fire at the same wall-clock time as the previous one is skipped, so a daily
    or weekly job runs once (an every-30-minutes job still runs through the repeated hour). A time
    the clocks skip (02:30 when they go forward) fires once, an hour later in wall-clock terms
    (APScheduler's choice).
    """

    def get_next_fire_time(self, previous: dt.datetime | None, now: dt.datetime) -> dt.datetime | None:
        fire: dt.datetime | None = super().get_next_fire_time(previous, now)
        repeated = (
            fire is not None
            and previous is not None
            and _wall(fire, self.timezone) == _wall(previous, self.timezone)
        )
        return super().get_next_fire_time(fire, fire) if repeated else fire


def _wall(value: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    return value.astimezone(tz).replace(tzinfo=None, fold=0)


def make_trigger(expression: str, tz: ZoneInfo, *, key: str = "schedule.cron", path: str = "") -> CronTrigger:
    """A CronTrigger from "min hour dom mon dow", or "sec min hour dom mon dow" (six fields)."""
    fields = expression.split()
    if len(fields) not in (5, 6):
        raise ConfigError(
            f"'{key}' must have 5 fields (minute hour day month weekday) or 6 (second first), "
            f"not {len(fields)}: {expression!r}",
            path=path,
            key=key,
            hint='e.g. "0 8 * * mon" for Mondays at 08:00',
        )
    if len(fields) == 5:
        fields.insert(0, "0")
    second, minute, hour, day, month, weekday = fields
    try:
        return SiteCronTrigger(
            second=second,
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=crontab_days(weekday),
            timezone=tz,
        )
    except ValueError as exc:
        raise ConfigError(
            f"'{key}' is not a valid cron expression: {expression!r}: {exc}", path=path, key=key
        ) from None


def run_trigger(config: Config) -> CronTrigger:
    return make_trigger(config.schedule.cron, config.site.tz, path=str(config.path))


def feeds_trigger(config: Config) -> CronTrigger | None:
    """The trigger of the optional feeds rebuild, or None when `[schedule] feeds_cron` is empty."""
    if not config.schedule.feeds_cron:
        return None
    return make_trigger(
        config.schedule.feeds_cron, config.site.tz, key="schedule.feeds_cron", path=str(config.path)
    )
