"""Bounces: which SMTP refusals are about the address, and what a bounce report says. Pure but for
reading the mailbox it is given.

- `is_permanent_refusal` reads an SMTP reply given at send time: a 5xx about the address (RFC 3463
  `5.1.x` bad address or domain, `5.2.1` mailbox disabled; without an enhanced code, 550, 551 or 553)
  suppresses it; a 5xx about the message (`5.7.1` policy, `5.3.4` size…) fails that message only.
- `read_reports` opens an mbox file or a Maildir folder; `parse_report` asks flufl.bounce (RFC 3464
  DSNs and the common non-standard formats) which original recipients failed for good and which for
  now, reads an ARF spam complaint (RFC 5965) itself, and finds the VERP id: the digest sends each
  message from `[subscribers] return_path` with the message's own id in it (`bounces+{id}@…`), so the
  report, addressed back to that, names the delivery even when the failing address is a forwarder's.
"""

from __future__ import annotations

import email
import mailbox
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.message import Message
from pathlib import Path
from typing import Any

from flufl.bounce import all_failures

from .errors import DigestError

_REPLY = re.compile(r"\s*(\d{3})(?:[ -]+(\d)\.(\d{1,3})\.(\d{1,3}))?")
_TOKEN = re.compile(r"\.([0-9a-f]{24})@")
_RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")


def is_permanent_refusal(reply: str) -> bool:
    """A final refusal of the address itself (not of this message): suppress it."""
    match = _REPLY.match(reply)
    if match is None or not match.group(1).startswith("5"):
        return False
    if match.group(2) is None:
        return match.group(1) in ("550", "551", "553")
    subject, detail = match.group(3), match.group(4)
    return match.group(2) == "5" and (subject == "1" or (subject, detail) == ("2", "1"))


def message_token(message_id: str) -> str | None:
    """The id part of a digest Message-ID (`<2025-W27.<24 hex>@domain>`): what `{id}` stands for."""
    match = _TOKEN.search(message_id)
    return match.group(1) if match else None


def verp_address(return_path: str, message_id: str) -> str | None:
    """The envelope sender for the message with `message_id`, or None without a return path."""
    token = message_token(message_id)
    if not return_path or token is None:
        return None
    return return_path.replace("{id}", token)


def verp_pattern(return_path: str) -> re.Pattern[str] | None:
    if not return_path:
        return None
    before, _, after = return_path.partition("{id}")
    return re.compile(re.escape(before) + "([0-9a-f]{24})" + re.escape(after), re.IGNORECASE)


@dataclass(frozen=True)
class Report:
    """What one bounce report says."""

    where: str  # the mailbox and the message's key in it
    token: str | None  # the VERP id it was addressed to, when there is one
    permanent: frozenset[str]  # original recipients that failed for good (lower case)
    temporary: frozenset[str]  # …that failed for now
    message_ids: tuple[str, ...]  # Message-IDs of the original message quoted in the report
    complaint: frozenset[str] = frozenset()  # an ARF (RFC 5965) spam complaint: its Original-Rcpt-To
    complained: bool = False  # the report is a complaint, whether or not it names the recipient


def read_reports(path: Path) -> Iterator[tuple[str, Message]]:
    """Every message of an mbox file or a Maildir folder (with cur/ and new/), with where it is."""
    if path.is_dir():
        if not (path / "cur").is_dir() and not (path / "new").is_dir():
            raise DigestError("not a Maildir (no cur/ or new/ in it)", path=str(path))
        box: mailbox.Mailbox[Any] = mailbox.Maildir(path, factory=None, create=False)
    elif path.is_file():
        box = mailbox.mbox(path, create=False)
    else:
        raise DigestError("no such mbox file or Maildir folder", path=str(path))
    try:
        for key in sorted(box.keys()):
            message = box.get(key)
            if message is not None:
                yield f"{path}:{key}", message
    except (OSError, mailbox.Error) as exc:
        raise DigestError(f"cannot read the mailbox: {exc}", path=str(path)) from None
    finally:
        box.close()


def parse_report(where: str, message: Message, pattern: re.Pattern[str] | None) -> Report:
    temporary, permanent = all_failures(message)
    token = None
    if pattern is not None:
        for header in _RECIPIENT_HEADERS:
            for value in message.get_all(header, []):
                match = pattern.search(str(value))
                if match:
                    token = match.group(1).lower()
                    break
            if token:
                break
    feedback = [part for part in message.walk() if part.get_content_type() == "message/feedback-report"]
    complaint = frozenset(_complaint_recipients(feedback))
    if feedback:  # a complaint is not a bounce, whatever a heuristic detector made of it
        permanent, temporary = frozenset(), frozenset()
    return Report(
        where,
        token,
        frozenset(a.decode("ascii", "replace").lower() for a in permanent),
        frozenset(a.decode("ascii", "replace").lower() for a in temporary),
        tuple(_quoted_message_ids(message)),
        complaint,
        bool(feedback),
    )


def _complaint_recipients(parts: list[Message]) -> Iterator[str]:
    """The `Original-Rcpt-To` of each feedback report (RFC 5965 §3.2), lower case."""
    for part in parts:
        payload = part.get_payload()
        blocks = payload if isinstance(payload, list) else []
        if isinstance(payload, str):
            blocks = [email.message_from_string(payload, policy=policy.compat32)]
        for block in blocks:
            if isinstance(block, Message):
                for value in block.get_all("Original-Rcpt-To", []):
                    address = str(value).strip().strip("<>").lower()
                    if "@" in address:
                        yield address


def _quoted_message_ids(message: Message) -> Iterator[str]:
    """The Message-ID of the original, from a text/rfc822-headers or message/rfc822 part."""
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message) and inner.get("Message-ID"):
                yield str(inner["Message-ID"]).strip()
        elif kind == "text/rfc822-headers":
            raw = part.get_payload(decode=True)
            if isinstance(raw, bytes):
                headers = email.message_from_bytes(raw, policy=policy.compat32)
                if headers.get("Message-ID"):
                    yield str(headers["Message-ID"]).strip()
