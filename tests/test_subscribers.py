"""Who gets the digest: the CSV file and the config list, validated (subscribers.py)."""

from __future__ import annotations

import pytest

from digest.config import load_config
from digest.errors import ConfigError, DigestError
from digest.subscribers import Subscriber, load_subscribers, require_subscribers

from conftest import Site


def configure(site: Site, csv: str | None, listed: str = "") -> None:
    extra = ""
    if csv is not None:
        (site.root / "subscribers.csv").write_text(csv, encoding="utf-8")
        extra = '[subscribers]\nfile = "subscribers.csv"\n' + listed
    elif listed:
        extra = "[subscribers]\n" + listed
    site.write_config(extra)


def test_a_csv_with_topics_names_and_a_bom(site: Site) -> None:
    configure(
        site,
        "\ufeffemail,name,topics\n"
        "a@example.com,Alice,\n"
        'b@example.org,"Li, Si", AI ; 投融资与市场洞察 \n'
        "\n"
        "c@example.com,,ai\n",
    )
    result = load_subscribers(site.config())
    assert result.problems == []
    assert result.subscribers == [
        Subscriber("a@example.com", "Alice", frozenset()),
        Subscriber("b@example.org", "Li, Si", frozenset({"ai", "投融资与市场洞察"})),
        Subscriber("c@example.com", "", frozenset({"ai"})),
    ]
    # Subscribers with the same topics share one rendering.
    assert list(result.by_edition(lambda tag: "").values()) == [
        result.subscribers[:1],
        result.subscribers[1:2],
        result.subscribers[2:],
    ]


def test_invalid_and_repeated_addresses_are_reported_with_their_line_and_skipped(site: Site) -> None:
    configure(
        site,
        "email,name\n"
        "good@example.com,Good\n"
        "not-an-address,Bad\n"
        "two@@example.com,Bad\n"
        "GOOD@example.com,Again\n"
        "名字@example.com,Unicode\n"
        ",Nobody\n"
        "x@localhost,NoDot\n"
        "ok@example.net,OK\n",
    )
    result = load_subscribers(site.config())
    assert [s.email for s in result.subscribers] == ["good@example.com", "ok@example.net"]
    lines = [str(p) for p in result.problems]
    assert lines == [
        "subscribers.csv:3: 'not-an-address' is not a valid email address (this subscriber is skipped)",
        "subscribers.csv:4: 'two@@example.com' is not a valid email address (this subscriber is skipped)",
        "subscribers.csv:5: 'GOOD@example.com' is listed twice (first at subscribers.csv:2) "
        "(this subscriber is skipped)",
        "subscribers.csv:6: '名字@example.com' is not a valid email address (non-ASCII addresses are not "
        "supported) (this subscriber is skipped)",
        "subscribers.csv:7: no email address (this subscriber is skipped)",
        "subscribers.csv:8: 'x@localhost' is not a valid email address (this subscriber is skipped)",
    ]


@pytest.fixture(autouse=True)
def _in_site(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(site.root)  # problems show paths relative to the current folder


def test_an_unknown_column_makes_the_file_unusable(site: Site) -> None:
    configure(site, "email,name,phone\na@example.com,A,123\n")
    with pytest.raises(DigestError, match=r"subscribers.csv:1: the header row must name the columns"):
        load_subscribers(site.config())


def test_a_missing_file_is_an_error_naming_it(site: Site) -> None:
    site.write_config('[subscribers]\nfile = "nobody.csv"\n')
    with pytest.raises(DigestError, match=r"nobody.csv: subscribers file not found"):
        load_subscribers(site.config())


def test_a_row_with_too_many_fields_is_reported(site: Site) -> None:
    configure(site, "email,name\na@example.com,Smith, John\nb@example.com,B\n")
    result = load_subscribers(site.config())
    assert [s.email for s in result.subscribers] == ["b@example.com"]
    assert "3 fields, but the header names 2" in str(result.problems[0])


def test_the_config_list_adds_to_the_file(site: Site) -> None:
    configure(
        site,
        "email\na@example.com\n",
        'list = [{ email = "b@example.com", name = "B", topics = ["AI", "Policy"] },\n'
        '        { email = "c@example.com", topics = "ai;policy" },\n'
        '        { email = "A@example.com" }]\n',
    )
    result = load_subscribers(site.config())
    assert result.subscribers == [
        Subscriber("a@example.com"),
        Subscriber("b@example.com", "B", frozenset({"ai", "policy"})),
        Subscriber("c@example.com", "", frozenset({"ai", "policy"})),
    ]
    assert "listed twice" in str(result.problems[0])


def test_an_unknown_key_in_the_config_list_is_a_config_error(site: Site) -> None:
    configure(site, None, 'list = [{ email = "b@example.com", phone = "1" }]\n')
    config = load_config(site.config_path)
    with pytest.raises(ConfigError, match=r"unknown key 'phone' in 'subscribers.list\[0\]'"):
        load_subscribers(config)


def test_no_subscribers_configured_is_an_error_not_a_digest_sent_to_nobody(site: Site) -> None:
    site.write_config()
    with pytest.raises(ConfigError, match="no subscribers are configured"):
        load_subscribers(site.config())


def test_a_file_with_only_the_header_is_an_error_naming_the_file(site: Site) -> None:
    configure(site, "email,name,topics\n")
    config = site.config()
    result = load_subscribers(config)
    assert result.subscribers == []
    with pytest.raises(DigestError) as caught:
        require_subscribers(config, result)
    assert str(caught.value) == (
        "subscribers.csv: no subscriber: the subscribers file lists nobody "
        "(add a row below the header email,name,topics)"
    )


def test_a_file_where_every_row_is_invalid_is_an_error_naming_the_file_and_a_row(site: Site) -> None:
    configure(site, "email,name\nnot-an-address,Bad\n,Nobody\n")
    config = site.config()
    with pytest.raises(DigestError) as caught:
        require_subscribers(config, load_subscribers(config))
    assert str(caught.value) == (
        "subscribers.csv: no usable subscriber: every one in the subscribers file was skipped "
        "(2 problems); the first: subscribers.csv:2: 'not-an-address' is not a valid email address "
        "(`digest check` lists every problem)"
    )


def test_an_empty_config_list_of_invalid_subscribers_names_the_key(site: Site) -> None:
    configure(site, None, 'list = [{ email = "nobody" }]\n')
    config = site.config()
    with pytest.raises(
        DigestError, match="no usable subscriber: every one in \\[subscribers\\] list"
    ) as caught:
        require_subscribers(config, load_subscribers(config))
    assert caught.value.key == "subscribers.list"


def test_one_usable_subscriber_is_enough(site: Site) -> None:
    configure(site, "email\nbad\nok@example.com\n")
    config = site.config()
    require_subscribers(config, load_subscribers(config))  # no error


# ---------------------------------------------------------------- issue 10: nothing lost, nothing injected


@pytest.mark.parametrize(
    ("csv", "line"),
    [
        ('email,name\na@example.com,Ann\nb@example.com,"Bob\nc@example.com,Cy\nd@example.com,Di\n', 3),
        ('email,name\na@example.com,Ann\nb@example.com,"Bob\nc@example.com,Cy\nd@example.com,"Di"\n', 3),
        ('email,name\r\na@example.com,"Ann"\r\n"b@example.com,Bob\r\nc@example.com,Cy\r\n', 3),
    ],
    ids=["never-closed", "closed-rows-later", "crlf"],
)
def test_a_stray_quote_is_an_error_not_a_silent_loss_of_the_rows_after_it(
    site: Site, csv: str, line: int
) -> None:
    configure(site, csv)
    with pytest.raises(DigestError) as caught:
        load_subscribers(site.config())
    assert str(caught.value) == (
        f"subscribers.csv:{line}: a quoted field runs over several lines, so the rows after it "
        "cannot be told apart; nobody was sent anything (check the quotes on this line: "
        "a '\"' inside a field is written '\"\"')"
    )


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("=?utf-8?q?Joe=0D=0ABcc:_x@y.z?=", "Joe Bcc: x@y.z"),
        ("=?utf-8?b?5byg5LiJ?=", "张三"),
        ("=?utf-8?q?=3D=3Futf-8=3Fq=3FA=3D0D=3D0AB=3F=3D?=", "A B"),  # an encoded word inside one
        ("Tab\there\x00\x1b[31m", "Tab here[31m"),
        ("=?x-unknown?q?Joe=0D=0A?=", "Joe"),
    ],
)
def test_names_are_read_as_one_line_of_text_with_encoded_words_decoded(
    site: Site, name: str, shown: str
) -> None:
    configure(site, f'email,name\na@example.com,"{name}"\n')
    assert [s.name for s in load_subscribers(site.config()).subscribers] == [shown]


def test_run_with_a_stray_quote_sends_and_records_nothing(site: Site) -> None:
    from click.testing import CliRunner

    from digest.cli import main
    from digest.state import State

    from conftest import NOW_ISO, article_text
    from smtp_server import write_run_config

    write_run_config(site.root)
    (site.root / "subscribers.csv").write_text(
        'email,name\na@example.com,Ann\nb@example.com,"Bob\nc@example.com,Cy\nd@example.com,Di\n',
        encoding="utf-8",
    )
    site.add("a.md", article_text("Alpha", "2025-06-27T10:00:00+08:00"))
    result = CliRunner().invoke(main, ["--config", str(site.root / "config.toml"), "run", "--now", NOW_ISO])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ")
    assert "subscribers.csv:3: a quoted field runs over several lines" in result.stderr
    assert not (site.root / "outbox").exists() or not list((site.root / "outbox").iterdir())
    state = State.open(site.config().state.path)
    try:
        assert state.history().periods == ()
    finally:
        state.close()


@pytest.mark.parametrize("target", ["/dev/zero", "fifo", "folder"])
def test_the_subscribers_file_must_be_a_regular_file(site: Site, target: str) -> None:
    import os

    path = target
    if target == "fifo":
        path = str(site.root / "subscribers.fifo")
        os.mkfifo(path)
    elif target == "folder":
        path = str(site.root)
    site.write_config(f'[subscribers]\nfile = "{path}"\n')
    with pytest.raises(DigestError) as caught:
        load_subscribers(site.config())
    assert str(caught.value).endswith(
        "the subscribers file is not a regular file (point [subscribers] file at a CSV file)"
    )


def test_a_subscribers_file_over_the_size_limit_is_refused_unread(site: Site) -> None:
    from digest.subscribers import MAX_FILE_BYTES

    configure(site, "email\na@example.com\n")
    with open(site.root / "subscribers.csv", "r+b") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: no disk, and nothing to read if it is not read
    with pytest.raises(DigestError) as caught:
        load_subscribers(site.config())
    assert f"the subscribers file is {MAX_FILE_BYTES + 1} bytes, over the limit of {MAX_FILE_BYTES}" in str(
        caught.value
    )


def test_a_language_column_and_list_key_are_read_and_a_bad_tag_is_reported(site: Site) -> None:
    configure(
        site,
        "language,email\nen,a@example.com\n,b@example.com\nnot a tag!,c@example.com\nzh-CN,d@example.com\n",
        '\nlist = [{ email = "e@example.com", language = "fr" }]\n',
    )
    result = load_subscribers(site.config())
    assert [(s.email, s.language) for s in result.subscribers] == [
        ("a@example.com", "en"),
        ("b@example.com", ""),
        ("d@example.com", "zh-CN"),
        ("e@example.com", "fr"),
    ]
    assert [(p.line, p.message) for p in result.problems] == [
        (4, "'not a tag!' is not a language tag (e.g. en, zh-CN, fr)")
    ]
    # One group (one rendering) per language and topic set.
    groups = result.by_edition(lambda tag: tag.split("-")[0])
    assert [key for key in groups] == [
        ("en", frozenset()),
        ("", frozenset()),
        ("zh", frozenset()),
        ("fr", frozenset()),
    ]
