"""Signed tokens: what a link may do, for whom, until when; nothing about a bad one is trusted."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from digest.errors import ConfigError
from digest.tokens import MAX_TOKEN_LENGTH, PURPOSES, ExpiredToken, InvalidToken, Tokens, parse_keys

NOW = dt.datetime(2025, 6, 30, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
OLD = "old-key-" + "o" * 40
NEW = "new-key-" + "n" * 40
URL_PATH_SAFE = re.compile(r"^[A-Za-z0-9_.\-]+$")


def test_each_purpose_carries_its_address_and_purpose_and_is_url_path_safe() -> None:
    tokens = Tokens([NEW])
    for purpose in PURPOSES:
        token = tokens.make(purpose, "reader@example.com", now=NOW, ref=7 if purpose == "confirm" else None)
        assert URL_PATH_SAFE.match(token), token
        read = tokens.read(token, purpose, now=NOW)
        assert (read.purpose, read.address) == (purpose, "reader@example.com")
    assert tokens.read(tokens.make("confirm", "a@example.com", now=NOW, ref=7), "confirm", now=NOW).ref == 7


@pytest.mark.parametrize("made", PURPOSES)
def test_a_token_made_for_one_purpose_is_refused_for_every_other(made: str) -> None:
    tokens = Tokens([NEW])
    token = tokens.make(made, "reader@example.com", now=NOW)  # type: ignore[arg-type]
    for purpose in PURPOSES:
        if purpose != made:
            with pytest.raises(InvalidToken):
                tokens.read(token, purpose, now=NOW)


BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def flipped(char: str) -> str:
    """Another base64url digit with every bit changed (changing only the padding bits of the last
    digit would decode to the same bytes)."""
    return BASE64URL[BASE64URL.index(char) ^ 0b111111] if char in BASE64URL else "A"


def test_tampering_with_any_character_is_detected() -> None:
    tokens = Tokens([NEW])
    token = tokens.make("unsubscribe", "reader@example.com")
    for index in range(len(token)):
        tampered = token[:index] + flipped(token[index]) + token[index + 1 :]
        with pytest.raises(InvalidToken):
            tokens.read(tampered, "unsubscribe", now=NOW)


def test_a_token_for_another_address_cannot_be_made_by_editing_the_payload() -> None:
    tokens = Tokens([NEW])
    mine = tokens.make("unsubscribe", "me@example.com")
    theirs = Tokens(["attacker-" + "x" * 40]).make("unsubscribe", "victim@example.com")
    forged = theirs.split(".")[0] + "." + mine.split(".")[1]
    for candidate in (theirs, forged):
        with pytest.raises(InvalidToken):
            tokens.read(candidate, "unsubscribe", now=NOW)


@pytest.mark.parametrize(
    "garbage", ["", ".", "..", "abc", "é" * 10, "A" * (MAX_TOKEN_LENGTH + 1), "W10.x", "%00", "a.b.c"]
)
def test_garbage_is_an_invalid_token_not_a_crash(garbage: str) -> None:
    with pytest.raises(InvalidToken):
        Tokens([NEW]).read(garbage, "unsubscribe", now=NOW)


def test_a_confirmation_expires_after_seven_days_and_never_works_before_it_was_made() -> None:
    tokens = Tokens([NEW])
    token = tokens.make("confirm", "reader@example.com", now=NOW, ref=1)
    week = dt.timedelta(days=7)
    assert tokens.read(token, "confirm", now=NOW + week).issued == NOW
    with pytest.raises(ExpiredToken):
        tokens.read(token, "confirm", now=NOW + week + dt.timedelta(milliseconds=1))
    with pytest.raises(ExpiredToken):
        tokens.read(token, "confirm", now=NOW - dt.timedelta(milliseconds=1))


def test_unsubscribe_and_preferences_links_never_expire_and_are_the_same_for_the_same_address() -> None:
    tokens = Tokens([NEW])
    for purpose in ("unsubscribe", "preferences"):
        first = tokens.make(purpose, "reader@example.com")  # type: ignore[arg-type]
        assert first == tokens.make(purpose, "reader@example.com")  # type: ignore[arg-type]
        later = NOW + dt.timedelta(days=3650)
        assert tokens.read(first, purpose, now=later).address == "reader@example.com"  # type: ignore[arg-type]


def test_the_form_stamp_knows_its_age_to_the_millisecond() -> None:
    tokens = Tokens([NEW])
    stamp = tokens.make("form", "", now=NOW)
    issued = tokens.read(stamp, "form", now=NOW + dt.timedelta(seconds=1.999)).issued
    assert issued == NOW


def test_after_a_key_rotation_old_links_still_work_and_new_ones_use_the_new_key() -> None:
    before = Tokens([OLD])
    after = Tokens(parse_keys(f"{NEW} {OLD}", "DIGEST_SECRET"))  # newest first
    old_link = before.make("unsubscribe", "reader@example.com")
    assert after.read(old_link, "unsubscribe", now=NOW).address == "reader@example.com"
    new_link = after.make("unsubscribe", "reader@example.com")
    assert new_link != old_link
    assert Tokens([NEW]).read(new_link, "unsubscribe", now=NOW).address == "reader@example.com"
    with pytest.raises(InvalidToken):
        before.read(new_link, "unsubscribe", now=NOW)
    # Once the old key is dropped from the variable, its links stop working.
    with pytest.raises(InvalidToken):
        Tokens([NEW]).read(old_link, "unsubscribe", now=NOW)


def test_keys_are_read_from_the_variables_value_newest_first() -> None:
    assert parse_keys(f"  {NEW},{OLD}\n", "DIGEST_SECRET") == (NEW, OLD)
    assert parse_keys(NEW, "DIGEST_SECRET") == (NEW,)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "DIGEST_SECRET holding the signing key is not set"),
        ("   ", "DIGEST_SECRET holding the signing key is not set"),
        (f"{NEW} short", "key 2 in the environment variable DIGEST_SECRET is 5 characters long"),
        (f"{NEW} {NEW}", "holds one key twice"),
    ],
)
def test_a_missing_or_weak_key_is_a_config_error_that_names_the_variable_not_the_key(
    value: str | None, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_keys(value, "DIGEST_SECRET")
    assert message in str(caught.value)
    assert caught.value.key == "server.secret_env"
    assert NEW not in str(caught.value) and "short" not in str(caught.value)
