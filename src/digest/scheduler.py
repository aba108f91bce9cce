"""`digest schedule`: run the weekly job on `[schedule] cron`, in the site timezone, until told to stop.

APScheduler 3's BackgroundScheduler with one worker thread (the digest job and the optional feeds job
never overlap), `coalesce=True`, `max_instances=1` and `misfire_grace_time` from the config. Missed
runs are judged from the state's own record, not from APScheduler's job store: each finished run
records when it started, so at start-up a fire time within the grace period that no run has covered
(the machine was off, or the process was killed mid-run) is run once, right away. A run that already
happened is never repeated: the record says so, and `jobs.run` itself sends one digest per period.
An unfinished digest (a killed run) also triggers one run at start-up, which finishes it.

SIGTERM or SIGINT lets the job in hand record the delivery it is making, then stops; the exit status
is 0. Both signals are blocked first thing in `serve`, before anything else happens, and the main
thread takes them with `sigtimedwait`: a signal at any moment (while the state is read, before the
scheduler has started, during a run) is pending until then, never lost, and no Python signal handler
runs (one that set an Event could deadlock if it interrupted that Event's own wait). The job honours
`stop` while it waits for the run lock, during SMTP backoff and between deliveries, so the stop
takes at most one delivery's time.

This module and the CLI are the only ones that read the clock.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from . import exits, jobs
from .config import Config
from .cron import CrontabTrigger, feeds_trigger, next_firings, run_trigger
from .errors import DigestError
from .reports import feeds_line
from .state import StoppedWaiting

log = logging.getLogger(__name__)

RUN_JOB = "digest-run"
FEEDS_JOB = "digest-feeds"
_MAX_CATCH_UP_SCAN = 100_000  # fire times looked at when searching the grace window (every second: a day)
_STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})
_POLL = 0.5  # seconds between looks at `stop` while waiting for a signal


def missed_run(
    trigger: CrontabTrigger, now: dt.datetime, last_run: dt.datetime | None, grace: int
) -> dt.datetime | None:
    """The latest fire time within `grace` seconds before `now` that no run has covered, if any.

    `last_run` is when the last scheduled run started (or when the scheduler first started, before any
    run); a fire time at or before it was handled. With no record at all nothing is owed.
    """
    if last_run is None:
        return None
    start = max(now - dt.timedelta(seconds=grace), last_run + dt.timedelta(microseconds=1))
    missed = None
    fire = trigger.get_next_fire_time(None, start)
    for _ in range(_MAX_CATCH_UP_SCAN):
        if fire is None or fire > now:
            break
        missed = fire
        fire = trigger.get_next_fire_time(fire, fire)
    return missed


# ---------------------------------------------------------------- the service


def serve(config: Config, stop: threading.Event | None = None) -> None:
    """Run the digest job on its schedule until SIGTERM/SIGINT (or until `stop` is set); returns after a
    clean stop, once the job in hand has recorded its delivery. Call it from the main thread."""
    # First thing: from here on a SIGTERM waits for us instead of killing the process mid-way. Threads
    # started later (the scheduler's, its worker) inherit the mask, so only the main thread takes them.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    stop = stop or threading.Event()
    try:
        if not logging.getLogger().handlers:  # a service logs to stderr (journald, docker logs)
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        log.info("starting; SIGTERM or SIGINT stops it")
        scheduler = _start(config, stop)
        try:
            signum = _wait_for_signal(stop)
            if signum is not None:
                log.info("%s: stopping after the current delivery", signal.Signals(signum).name)
        finally:
            stop.set()  # the job in hand finishes the delivery it is making, records it, and returns
            scheduler.shutdown(wait=True)
    finally:
        _unblock(blocked)
    log.info("stopped")


def _start(config: Config, stop: threading.Event) -> BackgroundScheduler:
    tz = config.site.tz
    trigger = run_trigger(config)
    feeds = feeds_trigger(config)
    grace = max(1, config.schedule.misfire_grace_time)
    now = dt.datetime.now(tz)
    catch_up = _catch_up_reason(config, trigger, now, grace)
    scheduler = BackgroundScheduler(
        timezone=tz,
        executors={"default": ThreadPoolExecutor(1)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": grace},
    )
    options = {"next_run_time": now} if catch_up else {}
    scheduler.add_job(_run_job, trigger, args=(config, stop), id=RUN_JOB, name="digest run", **options)
    if feeds is not None:
        scheduler.add_job(_feeds_job, feeds, args=(config, stop), id=FEEDS_JOB, name="digest build")
    if catch_up:
        log.info("running now: %s", catch_up)
    log.info("next digest run: %s", ", ".join(fire.isoformat() for fire in next_firings(trigger, now, 1)))
    scheduler.start()
    return scheduler


def _wait_for_signal(stop: threading.Event) -> int | None:
    """The blocked SIGTERM/SIGINT that arrived (pending ones included), or None once `stop` is set."""
    while not stop.is_set():
        if not hasattr(signal, "sigtimedwait"):  # macOS: no timed wait, so only a signal ends this
            return signal.sigwait(_STOP_SIGNALS)
        info = signal.sigtimedwait(_STOP_SIGNALS, _POLL)
        if info is not None:
            return info.si_signo
    return None


def _unblock(previous: set[int | signal.Signals]) -> None:
    """Restore the signal mask without dying of a second SIGTERM that came during the stop: a pending
    signal whose action is SIG_IGN is discarded, so ignore them while the mask is lifted."""
    handlers = {sig: signal.signal(sig, signal.SIG_IGN) for sig in _STOP_SIGNALS}
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _catch_up_reason(config: Config, trigger: CrontabTrigger, now: dt.datetime, grace: int) -> str:
    # On the first start nothing before now was ever owed, but from here on a fire time missed while
    # the machine is off is (jobs records `now` as the last run: that is how the next start-up knows).
    status = jobs.schedule_status(config, RUN_JOB, now)
    missed = missed_run(trigger, now, status.last_run, grace)
    if missed is not None:
        return f"the run due at {missed.isoformat()} was missed"
    if status.unfinished:
        return f"the digest {status.unfinished[0]} was interrupted"
    return ""


def _run_job(config: Config, stop: threading.Event) -> None:
    if stop.is_set():
        log.info("digest run not started: stopping")  # still owed at the next start-up
        return
    started = dt.datetime.now(config.site.tz)
    try:
        # A manual `digest run` may hold the lock; wait for it rather than skip this week.
        report = jobs.run(
            config,
            started,
            stop=stop,
            lock_timeout=max(jobs.LOCK_TIMEOUT, float(config.schedule.misfire_grace_time)),
        )
    except StoppedWaiting as exc:
        log.info("digest run not started: %s", exc.message)  # nothing done: still owed at the next start-up
        return
    except DigestError as exc:
        log.error("digest run failed: %s", exc)
    else:
        for problem in report.problems:
            log.warning("skipped: %s", problem)
        for line in report.summary_lines():
            log.info("%s", line)
        log.info("digest run finished (exit status %d)", exits.run_status(report))
    # Recorded after the run, so a run killed midway is owed (and done) at the next start-up.
    try:
        jobs.record_scheduled_run(config, RUN_JOB, started)
    except DigestError as exc:
        log.error("cannot record the run: %s", exc)


def _feeds_job(config: Config, stop: threading.Event) -> None:
    if stop.is_set():
        return
    try:
        report = jobs.build(config, dt.datetime.now(config.site.tz), stop=stop)
    except StoppedWaiting as exc:
        log.info("feeds build not started: %s", exc)
        return
    except DigestError as exc:
        log.error("feeds build failed: %s", exc)
        return
    for problem in report.problems:
        log.warning("skipped: %s", problem)
    log.info("%s", feeds_line(report))
