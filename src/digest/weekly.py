"""The digest's half of the weekly run, as steps `jobs.run` calls in order once it has composed the
digest: record it with its renderings and one pending delivery per recipient, write its web copy, and
deliver it, recording each delivery as the server accepts it. This module never imports `jobs`; it is
handed the state, the digest and the subscribers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .config import Config
from .delivery import Outcome, RefusalWatch, Transport, UnknownOutcome
from .errors import DeliveryError, DigestError, OutputError, Problem
from .feed_sets import language_of, site_languages
from .message import NO_TOKENS, LinkTokens, build_message, make_message_id
from .output import safe_join, write_atomic
from .reports import RunReport
from .selection import Digest, Edition, for_topics
from .state import OPEN_STATUSES, Delivery, DigestRecord, State
from .subscribers import SubscriberList
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
    for language in site_languages(config):
        variant = web_variant(language.key)
        web = webs.get(variant) if webs is not None else None
        if web is None and variant in stored:
            web = _rendered(stored[variant])
        if web is None:
            continue
        # archive_files reads only the period from the digest when handed its rendering.
        shell = Digest(period=record.period, since=record.since, now=record.cutoff, groups=())
        files = archive_files(shell, language.config, state.history().periods, rendered=web)
        folder = language.config.digest.archive_dir
        for name in sorted(files):
            try:
                if write_atomic(safe_join(folder, name), files[name]):
                    report.archive.append(language.prefix + name)
            except OutputError as exc:
                # The web copy is a convenience: a full archive disk must not cost anyone the email.
                report.problems.append(Problem.from_error(exc, str(folder)))
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
    """Delivers recorded digests over one transport (opened on first use) and records every outcome."""

    def __init__(
        self,
        config: Config,
        state: State,
        report: RunReport,
        now: dt.datetime,
        transport: Transport,
        sender: str,
        stop: threading.Event,
        audience: Audience | None = None,
    ) -> None:
        self.config, self.state, self.report, self.now = config, state, report, now
        self.transport, self.sender, self.stop = transport, sender, stop
        self.watch = RefusalWatch(transport.description)
        self.audience = audience or Audience()

    def deliver(self, record: DigestRecord, subscribers: SubscriberList) -> None:
        state, report, audience = self.state, self.report, self.audience
        renders = {variant: _rendered(parts) for variant, parts in state.renders(record.id).items()}
        # The list as it is now: a name corrected since the digest was recorded applies to whoever is
        # not yet sent.
        current = {s.email.casefold(): s for s in subscribers.subscribers}
        todo = state.deliveries(record.id, OPEN_STATUSES)
        if todo:
            report.transport = self.transport.description
        for index, delivery in enumerate(todo):
            if self.stop.is_set():
                report.stopped, report.left = "asked to stop", report.left + len(todo) - index
                break
            reason = audience.why_not(delivery.recipient)
            if reason is not None:
                state.record_delivery(
                    record.id, delivery.recipient, "cancelled", attempts=0, error=reason, now=self.now
                )
                report.cancelled += 1
                continue
            subscriber = current.get(delivery.recipient.casefold())
            try:
                data = build_message(
                    renders[delivery.variant],
                    self.config,
                    to=delivery.recipient,
                    to_name=subscriber.name if subscriber is not None else delivery.name,
                    message_id=delivery.message_id,
                    date=record.cutoff,
                    tokens=audience.tokens(delivery.recipient),
                )
            except DigestError as exc:  # this recipient's message can't be written: only theirs fails
                self._record(record, delivery.recipient, Outcome("failed", 0, str(exc)))
                continue
            sender = audience.return_path(delivery.message_id) or self.sender
            try:
                outcome = self.transport.send(
                    sender, delivery.recipient, data, key=f"{record.period}--{delivery.recipient}"
                )
            except UnknownOutcome as exc:  # maybe accepted: recorded so, never sent again in this run
                outcome, reason = exc.settle(delivery.last_error)
                self._record(record, delivery.recipient, outcome)
                if exc.stops_run:
                    report.stopped, report.left = reason, report.left + len(todo) - index - 1
                    break
                continue
            except DeliveryError as exc:
                report.stopped, report.left = str(exc), report.left + len(todo) - index
                break
            for recipient, result in self.watch.settle(delivery.recipient, outcome):
                self._record(record, recipient, result)
            if self.watch.refusing:  # the server refuses everyone: they all stay pending
                report.stopped = self.watch.refusing
                report.left += len(todo) - index - 1 + len(self.watch.release())
                break
        else:
            released, report.stopped = self.watch.end_of_digest()
            report.left += len(self.watch.release())
            for recipient, result in released:
                self._record(record, recipient, result)
        state.finish_if_complete(record.id, self.now)

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
        self.transport.close()
