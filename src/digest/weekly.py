"""The digest's half of the weekly run, as steps `jobs.run` calls in order once it has composed the
digest: record it with its renderings and one pending delivery per recipient, write its web copy, and
deliver it, recording each delivery as the server accepts it. This module never imports `jobs`; it is
handed the state, the digest and the subscribers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import logging
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .config import Config
from .delivery import Outcome, RefusalWatch, Transport, UnknownOutcome, connection_count
from .errors import DeliveryError, DigestError, OutputError, Problem
from .feed_sets import language_of, site_languages
from .message import NO_TOKENS, LinkTokens, build_message, make_message_id, recipient_header
from .output import safe_join, write_atomic
from .reports import RunReport
from .selection import Digest, Edition, for_topics
from .state import OPEN_STATUSES, Delivery, DigestRecord, State
from .subscribers import Subscriber, SubscriberList
from .templating import RenderedDigest, archive_files, render_digest

log = logging.getLogger(__name__)

WEB_VARIANT = "web"  # the archive copy's stored rendering; never sent to anyone


def _parts(rendered: RenderedDigest) -> dict[str, Any]:
    """What a resumed run needs to send the identical message (the composed Digest is not kept)."""
    return {
        "subject": rendered.subject,
        "html": rendered.html,
        "text": rendered.text,
        "encoded_html_bytes": rendered.encoded_html_bytes,
        "warnings": list(rendered.warnings),
        "budget": rendered.budget,
    }


def _rendered(parts: dict[str, Any]) -> RenderedDigest:
    return RenderedDigest(
        subject=parts["subject"],
        html=parts["html"],
        text=parts["text"],
        encoded_html_bytes=parts["encoded_html_bytes"],
        warnings=tuple(parts["warnings"]),
        budget=parts["budget"],
    )


def web_variant(language: str) -> str:
    """The stored rendering of a language's web copy ("web" on a one-language site)."""
    return WEB_VARIANT if not language else f"{WEB_VARIANT}:{language}"


def record_digest(
    config: Config,
    state: State,
    editions: Sequence[Edition],
    subscribers: SubscriberList,
    report: RunReport,
) -> tuple[DigestRecord, dict[str, RenderedDigest]]:
    """Render once per distinct subset of each language's digest, then record everything before the
    first send; the web copies (by stored variant) are returned for `write_web_copy`."""
    period = editions[0].digest.period
    ids = tuple(sorted({i for edition in editions for i in edition.digest.article_ids}))
    # From the period and the articles, not the clock: should the record ever be lost (a power cut
    # before the disk had it), composing again gives the same Message-IDs to the same messages.
    base = hashlib.sha256("\0".join([period, *ids]).encode()).hexdigest()[:16]
    by_language = {edition.language: edition for edition in editions}
    default = site_languages(config)[0].key

    @functools.cache  # one look-up per distinct tag, not per subscriber: each builds the languages
    def reads(tag: str) -> str:
        found = language_of(config, tag)
        return default if found is None else found

    renders: dict[str, RenderedDigest] = {}
    variant_of: dict[tuple[str, tuple[str, ...]], str] = {}  # (language, article ids of a subset) → variant
    deliveries: list[Delivery] = []
    for (language, topics), members in subscribers.by_edition(reads).items():
        edition = by_language.get(language)
        whole = edition.digest if edition is not None else None
        part = whole if whole is None or not topics else for_topics(whole, topics)
        if edition is None or whole is None or part is None:
            report.no_match += len(members)
            continue
        # Two topic sets that pick the same articles get the same rendering.
        variant = variant_of.get((language, part.article_ids))
        if variant is None:
            variant = "all" if part.article_ids == whole.article_ids else "topics:" + ";".join(sorted(topics))
            variant = f"{language}:{variant}" if language else variant
            variant_of[(language, part.article_ids)] = variant
            renders[variant] = render_digest(part, edition.config)
        deliveries.extend(
            Delivery(s.email, s.name, variant, make_message_id(period, s.email, config, salt=base))
            for s in members
        )
    webs = {
        web_variant(edition.language): render_digest(edition.digest, edition.config, web=True)
        for edition in editions
    }
    stored = {variant: _parts(r) for variant, r in renders.items()}
    stored.update((variant, _parts(web)) for variant, web in webs.items())
    record = state.record_digest(
        period=period,
        since=editions[0].digest.since,
        cutoff=editions[0].digest.now,
        message_id_base=base,
        article_ids=ids,
        renders=stored,
        deliveries=deliveries,
    )
    report.period, report.articles = period, len(ids)
    report.recipients, report.renders = len(deliveries), len(renders)
    report.warnings.extend(dict.fromkeys(w for r in renders.values() for w in r.warnings))
    log.info(
        "digest %s: %d articles for %d recipients, %d renderings",
        period,
        len(ids),
        len(deliveries),
        len(renders),
    )
    return record, webs


def write_web_copy(
    config: Config,
    state: State,
    record: DigestRecord,
    webs: Mapping[str, RenderedDigest] | None,
    report: RunReport,
) -> None:
    """Each language's web copy of the digest and the index of every digest, under its `[digest]
    archive_dir` (the default language's; `<lang>/` inside it for the others)."""
    stored = state.renders(record.id) if webs is None else {}
    periods = state.history().periods
    for language in site_languages(config):
        variant = web_variant(language.key)
        web = webs.get(variant) if webs is not None else None
        if web is None and variant in stored:
            web = _rendered(stored[variant])
        if web is None:
            continue
        # archive_files reads only the period from the digest when handed its rendering.
        shell = Digest(period=record.period, since=record.since, now=record.cutoff, groups=())
        files = archive_files(shell, language.config, periods, rendered=web)
        folder = language.config.digest.archive_dir
        for name in sorted(files):
            try:
                if write_atomic(safe_join(folder, name), files[name]):
                    report.archive.append(language.prefix + name)
            except OutputError as exc:
                # The web copy is a convenience: a full archive disk must not cost anyone the email.
                report.problems.append(
                    dataclasses.replace(Problem.from_error(exc, str(folder)), skipped=False)
                )
                return


def _send_everyone(address: str) -> str | None:
    return None


def _no_tokens(address: str) -> LinkTokens:
    return NO_TOKENS


def _suppress_nobody(address: str, error: str) -> bool:
    return False


def _no_return_path(message_id: str) -> str | None:
    return None


@dataclass(frozen=True)
class Audience:
    """What the courier asks about each recipient (`audience.py` answers from the subscriber store)."""

    # Why not to send to this address now (unsubscribed, suppressed, gone), or None: asked right
    # before each message, so an unsubscribe during a running send skips everyone not yet sent.
    why_not: Callable[[str], str | None] = _send_everyone
    # The recipient's signed tokens for the subscriber service's links.
    tokens: Callable[[str], LinkTokens] = _no_tokens
    # A permanent (5xx) refusal of this address: True when it was suppressed for it.
    refused: Callable[[str, str], bool] = _suppress_nobody
    # The envelope sender (MAIL FROM) for the message with this Message-ID (VERP), else None.
    return_path: Callable[[str], str | None] = _no_return_path


class Courier:
    """Delivers recorded digests and records every outcome.

    `[delivery] connections` connections (`connect` opens one; over SMTP, each lazily) send at once,
    each in its own thread with its own retries. This thread is the only one that asks the store and
    writes to it: it checks each recipient right before handing their message to an idle connection,
    and records each outcome as it comes, before that connection is given its next message. So a kill
    at any instant leaves at most one accepted, unrecorded message per connection, and everyone not
    yet recorded is sent again by the next run with the same Message-ID. With one connection the
    messages go out from this thread.

    Whatever stops the send (`stop`, a server refusing everyone, no connection) stops every
    connection: none is given another message, a backoff in progress is cut short, and what is in
    flight is recorded as it comes back.
    """

    def __init__(
        self,
        config: Config,
        state: State,
        report: RunReport,
        now: dt.datetime,
        connect: Callable[[threading.Event], Transport],
        sender: str,
        stop: threading.Event,
        audience: Audience | None = None,
    ) -> None:
        self.config, self.state, self.report, self.now = config, state, report, now
        self.sender, self.stop, self.connect = sender, stop, connect
        self.audience = audience or Audience()
        self.parallel = connection_count(config)
        # What the connections' backoffs wait on: `stop` itself for one connection in this thread;
        # for threads, an event this thread sets on `stop` or on a stop of its own.
        self.halt = stop if self.parallel == 1 else threading.Event()
        # The first connection is opened now (not connected yet): a missing password stops the run
        # before anything is recorded.
        self.transports = [connect(self.halt)]
        self.description = self.transports[0].description
        self.watch = RefusalWatch(self.description)
        self._recipients: dict[tuple[str, str], bytes] = {}  # (address, name) → its To: line

    def deliver(self, record: DigestRecord, subscribers: SubscriberList) -> None:
        state, report = self.state, self.report
        renders = {variant: _rendered(parts) for variant, parts in state.renders(record.id).items()}
        # The list as it is now: a name corrected since the digest was recorded applies to whoever is
        # not yet sent.
        current = {s.email.casefold(): s for s in subscribers.subscribers}
        send = _Send(record, renders, current, state.deliveries(record.id, OPEN_STATUSES))
        if not send.todo:
            state.finish_if_complete(record.id, self.now)
            return
        report.transport = self.description
        listed = len(report.failed), len(report.deferred), len(report.suppressed)
        lines = self._lines(min(self.parallel, len(send.todo)), send.results)
        try:
            busy = sum(self._next(send, line) for line in lines)
            while busy:
                line, job, result = self._result(send)
                busy -= 1
                self._settle(send, job, result)
                busy += self._next(send, line)
        except BaseException:
            if self.halt is not self.stop:
                self.halt.set()  # no connection waits out a backoff for a send that is over
            raise
        finally:
            for line in lines:
                line.finish()
        if send.stopped:
            report.stopped = send.stopped
            report.left += send.unrecorded + len(send.todo) - send.index + self.watch.left_pending()
        else:
            released, report.stopped = self.watch.end_of_digest()
            report.left += self.watch.left_pending()
            for recipient, result in released:
                self._record(record, recipient, result)
        self._in_list_order(send, listed)
        if send.error is not None:
            raise send.error
        state.finish_if_complete(record.id, self.now)

    def _lines(self, count: int, results: queue.SimpleQueue[_Result]) -> list[_Line]:
        if self.parallel == 1:
            return [_Line(self.transports[0], results)]
        while len(self.transports) < count:
            self.transports.append(self.connect(self.halt))
        return [_Thread(transport, results) for transport in self.transports[:count]]

    def _next(self, send: _Send, line: _Line) -> bool:
        """Hand the next recipient still to get the digest to `line`; False when there is none, or
        the send is stopping."""
        audience = self.audience
        while send.index < len(send.todo) and not send.stopped:
            if self.stop.is_set():
                self._stop(send, "asked to stop")
                break
            delivery = send.todo[send.index]
            send.index += 1
            reason = audience.why_not(delivery.recipient)
            if reason is not None:
                self.state.record_delivery(
                    send.record.id, delivery.recipient, "cancelled", attempts=0, error=reason, now=self.now
                )
                self.report.cancelled += 1
                continue
            try:
                data = self._message(send, delivery)
            except DigestError as exc:  # this recipient's message can't be written: only theirs fails
                self._record(send.record, delivery.recipient, Outcome("failed", 0, str(exc)))
                continue
            sender = audience.return_path(delivery.message_id) or self.sender
            line.start(_Job(delivery, data, sender, f"{send.record.period}--{delivery.recipient}"))
            return True
        return False

    def _message(self, send: _Send, delivery: Delivery) -> bytes:
        subscriber = send.current.get(delivery.recipient.casefold())
        name = subscriber.name if subscriber is not None else delivery.name
        to = self._recipients.get((delivery.recipient, name))
        if to is None:  # encoded once per subscriber, whatever number of digests the run sends
            to = self._recipients[delivery.recipient, name] = recipient_header(delivery.recipient, name)
        return build_message(
            send.renders[delivery.variant],
            self.config,
            to=delivery.recipient,
            to_header=to,
            message_id=delivery.message_id,
            date=send.record.cutoff,
            tokens=self.audience.tokens(delivery.recipient),
        )

    def _result(self, send: _Send) -> _Result:
        while True:
            try:
                return send.results.get(timeout=_POLL)
            except queue.Empty:
                if self.stop.is_set():
                    self.halt.set()  # cut the connections' backoffs short

    def _settle(self, send: _Send, job: _Job, result: Outcome | BaseException) -> None:
        recipient = job.delivery.recipient
        if isinstance(result, UnknownOutcome):  # maybe accepted: recorded so, never sent again in this run
            outcome, reason = result.settle(job.delivery.last_error)
            self._record(send.record, recipient, outcome)
            if result.stops_run:
                self._stop(send, reason)
        elif isinstance(result, BaseException):  # a DeliveryError stops the run; this one stays pending
            send.unrecorded += 1
            if not isinstance(result, DeliveryError):
                send.error = send.error or result
            self._stop(send, str(result))
        elif result.status == "deferred" and (send.stopped or self.stop.is_set()):
            self._record(send.record, recipient, result)  # its backoff was cut short by the stop
        else:
            for settled, outcome in self.watch.settle(recipient, result):
                self._record(send.record, settled, outcome)
            if self.watch.refusing:  # the server refuses everyone: they all stay pending
                self._stop(send, self.watch.refusing)

    def _stop(self, send: _Send, reason: str) -> None:
        if not send.stopped:
            send.stopped = reason
        if self.halt is not self.stop:
            self.halt.set()

    def _in_list_order(self, send: _Send, listed: tuple[int, int, int]) -> None:
        """The failed, deferred and suppressed recipients of this digest as its list orders them, not
        as the connections happened to finish."""
        order = {delivery.recipient: n for n, delivery in enumerate(send.todo)}
        report, (failed, deferred, suppressed) = self.report, listed

        def by_address(item: tuple[str, str]) -> int:
            return order[item[0]]

        report.failed[failed:] = sorted(report.failed[failed:], key=by_address)
        report.deferred[deferred:] = sorted(report.deferred[deferred:], key=by_address)
        report.suppressed[suppressed:] = sorted(report.suppressed[suppressed:], key=order.__getitem__)

    def _record(self, record: DigestRecord, recipient: str, outcome: Outcome) -> None:
        # Recorded at once, in its own transaction: this is what makes a resumed run skip it.
        self.state.record_delivery(
            record.id, recipient, outcome.status, attempts=outcome.attempts, error=outcome.error, now=self.now
        )
        if outcome.status == "sent":
            self.report.sent += 1
        elif outcome.status == "failed":
            self.report.failed.append((recipient, outcome.error))
            if self.audience.refused(recipient, outcome.error):
                self.report.suppressed.append(recipient)
        else:
            self.report.deferred.append((recipient, outcome.error))

    def close(self) -> None:
        for transport in self.transports:
            transport.close()


_POLL = 0.05  # seconds between two looks at `stop` while every connection is busy


@dataclass(frozen=True)
class _Job:
    delivery: Delivery
    data: bytes
    sender: str
    key: str


_Result = tuple["_Line", _Job, "Outcome | BaseException"]


@dataclass
class _Send:
    """One digest's delivery in progress."""

    record: DigestRecord
    renders: dict[str, RenderedDigest]
    current: dict[str, Subscriber]
    todo: list[Delivery]
    index: int = 0  # todo[index:] were not handed to a connection
    stopped: str = ""  # why the send stops ("" while it goes on)
    unrecorded: int = 0  # handed over, and neither sent nor recorded (the run stopped at them)
    error: BaseException | None = None  # not a delivery problem: raised once the others are recorded
    results: queue.SimpleQueue[_Result] = field(default_factory=queue.SimpleQueue)


def _send(transport: Transport, job: _Job) -> Outcome | BaseException:
    try:
        return transport.send(job.sender, job.delivery.recipient, job.data, key=job.key)
    except Exception as exc:  # the courier's thread decides what it means
        return exc


class _Line:
    """A connection that sends in the courier's thread: `start` returns once its result is in."""

    def __init__(self, transport: Transport, results: queue.SimpleQueue[_Result]) -> None:
        self.transport, self.results = transport, results

    def start(self, job: _Job) -> None:
        self.results.put((self, job, _send(self.transport, job)))

    def finish(self) -> None:
        pass


class _Thread(_Line):
    """A connection that sends in a thread of its own, one message at a time."""

    def __init__(self, transport: Transport, results: queue.SimpleQueue[_Result]) -> None:
        super().__init__(transport, results)
        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="digest-smtp", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (job := self.jobs.get()) is not None:
            try:
                result = _send(self.transport, job)
            except BaseException as exc:  # whatever it is, the courier's thread hears of it
                result = exc
            self.results.put((self, job, result))

    def start(self, job: _Job) -> None:
        self.jobs.put(job)

    def finish(self) -> None:
        """Ends the thread once the message in hand is sent (its result is not waited for)."""
        self.jobs.put(None)
        self.thread.join()
