"""`digest subscribers …` and `digest bounces` through CliRunner: the exact lines, the exit status, and
what the next `digest run` then does (outbox)."""

from __future__ import annotations

import csv
import datetime as dt
import email
import io
import mailbox
from email import policy
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest.cli import main

from conftest import NOW, Site, article_text
from smtp_server import write_run_config, write_subscribers

WEEK = dt.timedelta(days=7)


@pytest.fixture
def run_site(site: Site) -> Site:
    write_run_config(site.root)
    text = site.config_path.read_text(encoding="utf-8").replace(
        'file = "subscribers.csv"', 'file = "subscribers.csv"\nreturn_path = "bounces+{id}@example.com"'
    )
    site.config_path.write_text(text, encoding="utf-8")
    write_subscribers(site.root, [("listed@example.com", "Listed", "")])
    site.add("a.md", article_text("Alpha", "2025-06-25T10:00:00+08:00", main_topics=["AI"]))
    return site


def cli(site: Site, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--config", str(site.config_path), *args])
    return result.exit_code, result.stdout, result.stderr


def write_csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["email", "name", "topics"])
    writer.writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


def test_import_list_remove_export(run_site: Site) -> None:
    imported = write_csv(
        run_site.root / "more.csv",
        [("A@Example.com", "A", "AI;Policy"), ("b@example.com", "B", ""), ("not an address", "", "")],
    )
    code, out, err = cli(run_site, "subscribers", "import", str(imported), "--now", NOW.isoformat())
    assert code == 3
    assert out == f"imported {imported}: 2 added, 0 activated, 0 kept, 0 suppressed (not brought back)\n"
    assert err.startswith(f"skipped: {imported}:4: 'not an address' is not a valid email address")

    assert cli(run_site, "subscribers", "list") == (
        0,
        "a@example.com  active  ai; policy\nb@example.com  active  all topics\n",
        "",
    )
    code, out, err = cli(run_site, "subscribers", "remove", "B@example.com", "--now", NOW.isoformat())
    assert (code, out, err) == (0, "removed b@example.com: no more mail goes to it\n", "")
    assert (
        cli(run_site, "subscribers", "remove", "b@example.com")[1] == "b@example.com was already suppressed\n"
    )
    code, out, err = cli(run_site, "subscribers", "remove", "nobody")
    assert code == 1 and out == ""
    assert err.startswith("Error: not an email address: 'nobody' (")

    # Re-importing does not bring the removed address back.
    code, out, _ = cli(run_site, "subscribers", "import", str(imported), "--now", NOW.isoformat())
    assert out == f"imported {imported}: 0 added, 0 activated, 1 kept, 1 suppressed (not brought back)\n"
    assert cli(run_site, "subscribers", "list")[1] == (
        "a@example.com  active  ai; policy\nb@example.com  suppressed (unsubscribe)  all topics\n"
    )
    rows = list(csv.DictReader(io.StringIO(cli(run_site, "subscribers", "export")[1])))
    assert [(r["email"], r["status"], r["topics"], r["suppressed"]) for r in rows] == [
        ("a@example.com", "active", "ai;policy", ""),
        ("b@example.com", "unsubscribed", "", "unsubscribe"),
    ]
    consent = list(csv.DictReader(io.StringIO(cli(run_site, "subscribers", "export", "--consent")[1])))
    assert [(r["email"], r["event"], r["method"]) for r in consent] == [
        ("a@example.com", "import", ""),
        ("b@example.com", "import", ""),
        ("b@example.com", "unsubscribe", "admin"),
    ]

    # The run sends to the imported and the configured subscribers, not to the removed one.
    code, out, _ = cli(run_site, "run", "--now", NOW.isoformat())
    assert code == 0
    assert sorted(p.name for p in (run_site.root / "outbox").glob("*.eml")) == [
        "2025-W27--a@example.com.eml",
        "2025-W27--listed@example.com.eml",
    ]


def test_a_row_gone_from_the_configured_file_is_no_longer_sent_to_and_can_come_back(run_site: Site) -> None:
    write_subscribers(run_site.root, [("listed@example.com", "", ""), ("leaves@example.com", "", "")])
    assert cli(run_site, "run", "--now", NOW.isoformat())[0] == 0
    write_subscribers(run_site.root, [("listed@example.com", "", "")])
    run_site.add("b.md", article_text("Beta", "2025-07-02T10:00:00+08:00"))
    assert cli(run_site, "run", "--now", (NOW + WEEK).isoformat())[0] == 0
    names = sorted(p.name for p in (run_site.root / "outbox").glob("2025-W28*.eml"))
    assert names == ["2025-W28--listed@example.com.eml"]
    assert cli(run_site, "subscribers", "list")[1] == "listed@example.com  active  all topics\n"
    write_subscribers(run_site.root, [("listed@example.com", "", ""), ("leaves@example.com", "", "")])
    run_site.add("c.md", article_text("Gamma", "2025-07-09T10:00:00+08:00"))
    assert cli(run_site, "run", "--now", (NOW + 2 * WEEK).isoformat())[0] == 0
    assert len(list((run_site.root / "outbox").glob("2025-W29*.eml"))) == 2  # not suppressed: back


# ---------------------------------------------------------------- bounces


def dsn(to: str, recipient: str, action: str, status: str, message_id: str) -> bytes:
    """An RFC 3464 delivery status notification, as Postfix writes one."""
    return (
        "From: MAILER-DAEMON@mx.example.net\r\n"
        f"To: {to}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; {status} the reason\r\n\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {message_id}\r\nSubject: the digest\r\n\r\n"
        "--B--\r\n"
    ).encode("ascii")


def message_id(site: Site, name: str) -> str:
    parsed = email.message_from_bytes((site.root / "outbox" / name).read_bytes(), policy=policy.default)
    return str(parsed["Message-ID"])


def mbox_of(path: Path, messages: list[bytes]) -> Path:
    box = mailbox.mbox(path)
    for data in messages:
        box.add(data)
    box.close()
    return path


def test_hard_bounces_suppress_soft_ones_after_three_of_the_last_five_digests(run_site: Site) -> None:
    write_subscribers(
        run_site.root,
        [("hard@example.com", "", ""), ("soft@example.com", "", ""), ("fine@example.com", "", "")],
    )
    ids: dict[str, list[str]] = {"hard": [], "soft": []}
    for week in range(3):
        if week:
            run_site.add(f"w{week}.md", article_text(f"W{week}", f"2025-07-0{1 + week * 3}T10:00:00+08:00"))
        assert cli(run_site, "run", "--now", (NOW + week * WEEK).isoformat())[0] == 0
        period = f"2025-W{27 + week}"
        for who in ids:
            ids[who].append(message_id(run_site, f"{period}--{who}@example.com.eml"))
    token = ids["hard"][0].split(".", 1)[1].split("@")[0]
    # The hard bounce names no recipient the site knows (a forwarder's address): VERP says who it was.
    hard = dsn(f"bounces+{token}@example.com", "old-name@forward.example", "failed", "5.1.1", "<x@y>")
    vacation = b"From: soft@example.com\r\nTo: digest@example.com\r\nSubject: Out of office\r\n\r\nAway.\r\n"
    first = mbox_of(
        run_site.root / "bounces.mbox",
        [
            hard,
            vacation,
            dsn("digest@example.com", "soft@example.com", "delayed", "4.2.2", ids["soft"][0]),
            dsn("digest@example.com", "soft@example.com", "delayed", "4.2.2", ids["soft"][1]),
        ],
    )
    code, out, err = cli(run_site, "bounces", str(first), "--now", (NOW + 3 * WEEK).isoformat())
    assert (code, out) == (
        0,
        "read 4 reports: 1 hard bounce, 2 soft bounces\nsuppressed: hard@example.com (hard-bounce)\n",
    )
    assert err == f"skipped: {first}:1: not a bounce report of a digest (skipped)\n"
    # The same reports again count once: soft@ is still at two digests.
    assert cli(run_site, "bounces", str(first))[1] == "read 4 reports: 1 hard bounce, 2 soft bounces\n"

    # A third digest's soft bounce, from a Maildir, suppresses it.
    maildir = mailbox.Maildir(run_site.root / "Maildir", create=True)
    maildir.add(dsn("digest@example.com", "soft@example.com", "delayed", "4.2.2", ids["soft"][2]))
    maildir.close()
    code, out, _ = cli(run_site, "bounces", str(run_site.root / "Maildir"))
    assert (code, out) == (
        0,
        "read 1 report: 0 hard bounces, 1 soft bounce\nsuppressed: soft@example.com (soft-bounces)\n",
    )
    assert cli(run_site, "subscribers", "list")[1] == (
        "fine@example.com  active  all topics\n"
        "hard@example.com  suppressed (hard-bounce)  all topics\n"
        "soft@example.com  suppressed (soft-bounces)  all topics\n"
    )
    # Neither is sent to again, though the configured file still lists both.
    run_site.add("w4.md", article_text("W4", "2025-07-20T10:00:00+08:00"))
    assert cli(run_site, "run", "--now", (NOW + 3 * WEEK).isoformat())[0] == 0
    assert [p.name for p in (run_site.root / "outbox").glob("2025-W30*")] == [
        "2025-W30--fine@example.com.eml"
    ]


def test_bounces_of_a_path_that_is_not_a_mailbox_is_one_error_line(run_site: Site) -> None:
    (run_site.root / "folder").mkdir()
    code, out, err = cli(run_site, "bounces", str(run_site.root / "folder"))
    assert (code, out, err) == (
        1,
        "",
        f"Error: {run_site.root / 'folder'}: not a Maildir (no cur/ or new/ in it)\n",
    )
    code, _, err = cli(run_site, "bounces", str(run_site.root / "missing"))
    assert (code, err) == (1, f"Error: {run_site.root / 'missing'}: no such mbox file or Maildir folder\n")


def arf(message_id: str, recipient: str) -> bytes:
    """An RFC 5965 abuse report, as a mailbox provider's feedback loop sends one."""
    return (
        "From: fbl@isp.example\r\nTo: fbl@example.com\r\nSubject: FW: the digest\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="F"\r\n\r\n'
        "--F\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n"
        "--F\r\nContent-Type: message/feedback-report\r\n\r\n"
        "Feedback-Type: abuse\r\nUser-Agent: FBL/1.0\r\nVersion: 1\r\n"
        f"Original-Rcpt-To: <{recipient}>\r\n\r\n"
        "--F\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {message_id}\r\nSubject: the digest\r\n\r\n"
        "--F--\r\n"
    ).encode("ascii")


def test_a_spam_complaint_suppresses_the_address_it_names(run_site: Site) -> None:
    write_subscribers(run_site.root, [("angry@example.com", "", ""), ("fine@example.com", "", "")])
    assert cli(run_site, "run", "--now", NOW.isoformat())[0] == 0
    quoted = message_id(run_site, "2025-W27--angry@example.com.eml")
    # The provider redacts the recipient; the quoted Message-ID still names the delivery.
    box = mbox_of(run_site.root / "fbl.mbox", [arf(quoted, "redacted@isp.example")])
    assert cli(run_site, "bounces", str(box)) == (
        0,
        "read 1 report: 0 hard bounces, 0 soft bounces, 1 complaint\n"
        "suppressed: angry@example.com (complaint)\n",
        "",
    )
    assert (
        cli(run_site, "subscribers", "list")[1].splitlines()[0]
        == "angry@example.com  suppressed (complaint)  all topics"
    )
    # One that quotes no known message names the recipient itself.
    box = mbox_of(run_site.root / "fbl2.mbox", [arf("<elsewhere@isp.example>", "Fine@Example.com")])
    lines = cli(run_site, "bounces", str(box))[1].splitlines()
    assert lines[-1] == "suppressed: fine@example.com (complaint)"
