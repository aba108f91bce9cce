"""The typed configuration: one frozen object, loaded and validated once.

Every section is a frozen dataclass whose fields are the keys the README documents. Loading walks the
TOML tables against those fields, so an unknown key or a value of the wrong type is an error that names
the key and the file. Relative paths are resolved against the config file's folder.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import re
import tomllib
import types
import typing
import unicodedata
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.errors import HeaderParseError
from email.header import decode_header
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin
from urllib.parse import urlsplit

from .errors import ConfigError
from .urls import legacy_permalink, plain_pattern_problem

if TYPE_CHECKING:  # a Hugo site's readers (and YAML) load only when a config names one
    from .hugo_config import HugoSite


@dataclass(frozen=True)
class SiteConfig:
    title: str = "digest"
    base_url: str = "https://example.com/"
    language: str = "en"
    timezone: str = "UTC"
    author: str = ""
    description: str = ""

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def localize(self, moment: dt.datetime) -> dt.datetime:
        """An aware datetime: a naive one is taken to be in the site timezone."""
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=self.tz)

    @property
    def domain(self) -> str:
        return urlsplit(self.base_url).hostname or "localhost"


@dataclass(frozen=True)
class ContentConfig:
    dir: Path = Path("content")
    permalink: str = "/posts/:slugorfilename/"
    topic_field: str = "main_topics"
    summary_fields: tuple[str, ...] = ("summary", "description")
    image_fields: tuple[str, ...] = ("featured_image", "cover", "images")
    summary_chars: int = 160
    max_file_bytes: int = 5_000_000
    hugo_site: Path | None = None
    render_timeout: float = 10.0  # seconds one article's Markdown may take to render (render.py)


@dataclass(frozen=True)
class FeedsConfig:
    dir: Path = Path("feeds")
    max_entries: int = 50
    full_content: bool = True
    url: str = ""
    # None (only ever set by a Hugo site's config, TOML has no null): the term page Hugo publishes.
    topic_page: str | None = "/topics/{slug}/"
    topic_slugs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StateConfig:
    path: Path = Path(".digest/state.sqlite3")


@dataclass(frozen=True)
class DigestConfig:
    since: dt.datetime | None = None
    first_lookback: int = 7
    max_age: int = 30
    topic_order: tuple[str, ...] = ()
    subject: str = "{site} 周报 {period}"
    max_bytes: int = 90_000
    templates: Path | None = None
    archive_dir: Path = Path("feeds/digests")
    sender: str = "digest@example.com"
    unsubscribe_url: str = ""
    manage_url: str = ""
    utm: dict[str, str] = field(default_factory=dict)
    title_max_chars: int = 60


@dataclass(frozen=True)
class SubscriberEntry:
    email: str
    name: str = ""
    topics: tuple[str, ...] = ()


@dataclass(frozen=True)
class SubscribersConfig:
    file: Path | None = None
    list: tuple[dict[str, Any], ...] = ()
    # The subscriber service's limits (`digest serve`); intervals in seconds.
    mail_interval: int = 600
    mails_per_day: int = 3
    requests_per_ip: int = 20
    ip_window: int = 3600
    # The SMTP envelope sender (MAIL FROM) per message, e.g. "bounces+{id}@example.com": VERP, so a
    # bounce report names the delivery it is about. "" = the address of [digest] from.
    return_path: str = ""


@dataclass(frozen=True)
class ServerConfig:
    """`digest serve`: the subscriber pages. Off while `public_url` is empty."""

    public_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8025
    secret_env: str = "DIGEST_SECRET"  # noqa: S105 (the variable's name, never the key)
    proxy_hops: int = 0
    threads: int = 4

    @property
    def enabled(self) -> bool:
        return bool(self.public_url)


# More connections than this buy nothing from one relay but its rate limits.
MAX_CONNECTIONS = 64


@dataclass(frozen=True)
class DeliveryConfig:
    method: Literal["outbox", "smtp"] = "outbox"
    outbox: Path = Path("outbox")
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_security: Literal["none", "starttls", "ssl"] = "none"
    smtp_username: str = ""
    smtp_password_env: str = ""
    smtp_timeout: float = 30.0
    smtp_data_timeout: float = 600.0  # RFC 5321 §4.5.3.2.6: the reply to the end of DATA
    max_attempts: int = 5
    retry_backoff: float = 2.0
    connections: int = 4  # SMTP connections delivering in parallel


@dataclass(frozen=True)
class ScheduleConfig:
    cron: str = "0 8 * * mon"
    feeds_cron: str = ""
    misfire_grace_time: int = 3600


@dataclass(frozen=True)
class Config:
    path: Path
    site: SiteConfig = field(default_factory=SiteConfig)
    content: ContentConfig = field(default_factory=ContentConfig)
    feeds: FeedsConfig = field(default_factory=FeedsConfig)
    state: StateConfig = field(default_factory=StateConfig)
    digest: DigestConfig = field(default_factory=DigestConfig)
    subscribers: SubscribersConfig = field(default_factory=SubscribersConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    hugo: HugoSite | None = None  # the Hugo site's config, read once, when [content] hugo_site is set

    @property
    def root(self) -> Path:
        return self.path.parent


_SECTIONS: dict[str, type] = {
    "site": SiteConfig,
    "content": ContentConfig,
    "feeds": FeedsConfig,
    "state": StateConfig,
    "digest": DigestConfig,
    "subscribers": SubscribersConfig,
    "delivery": DeliveryConfig,
    "schedule": ScheduleConfig,
    "server": ServerConfig,
}

# TOML keys that are Python keywords or builtins get another attribute name.
_RENAMED = {("digest", "from"): "sender"}


def _key_for(section: str, attribute: str) -> str:
    for (sec, key), attr in _RENAMED.items():
        if sec == section and attr == attribute:
            return key
    return attribute


def documented_keys() -> list[str]:
    """Every `section.key` the config accepts, in order; the README must document each one."""
    keys = []
    for section, cls in _SECTIONS.items():
        for f in dataclasses.fields(cls):
            keys.append(f"{section}.{_key_for(section, f.name)}")
    return keys


def load_config(path: str | Path) -> Config:
    """Read and validate the config file; any problem is a ConfigError naming the file and key."""
    config_path = Path(path).resolve()
    where = str(path)
    try:
        raw = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("config file not found", path=where, hint="pass --config FILE") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config: {exc}", path=where) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=where) from None

    root = config_path.parent
    sections: dict[str, Any] = {}
    for name, table in raw.items():
        if name not in _SECTIONS:
            raise ConfigError(
                f"unknown section [{name}]",
                path=where,
                key=name,
                hint="known sections: " + ", ".join(_SECTIONS),
            )
        if not isinstance(table, dict):
            raise ConfigError(f"'{name}' must be a table", path=where, key=name)
        sections[name] = _build_section(name, _SECTIONS[name], table, root, where)
    # A path the file does not set is relative to the file too, as the ones it sets (and not to the
    # folder digest happens to be started in).
    for name, cls in _SECTIONS.items():
        sections[name] = _anchored(sections[name] if name in sections else cls(), root)
    config = Config(path=config_path, **sections)
    if config.content.hugo_site is not None:
        config = _with_hugo_site(config, raw)
    _check(config, where)
    return config


def _anchored(section: Any, root: Path) -> Any:
    """The section with each relative path (a default) resolved against `root`."""
    relative = {
        f.name: (root / value).resolve()
        for f in dataclasses.fields(section)
        if isinstance(value := getattr(section, f.name), Path) and not value.is_absolute()
    }
    return dataclasses.replace(section, **relative) if relative else section


def _build_section(name: str, cls: type, table: dict[str, Any], root: Path, where: str) -> Any:
    hints = typing.get_type_hints(cls)
    by_key = {_key_for(name, f.name): f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in by_key:
            raise ConfigError(
                f"unknown key '{name}.{key}'",
                path=where,
                key=f"{name}.{key}",
                hint="known keys: " + ", ".join(by_key),
            )
        attr = by_key[key].name
        values[attr] = _coerce(value, hints[attr], f"{name}.{key}", root, where)
    return cls(**values)


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        return " or ".join(repr(a) for a in get_args(annotation))
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_type_name(a) for a in get_args(annotation) if a is not type(None))
    if origin is tuple:
        return f"a list of {_type_name(get_args(annotation)[0])}"
    if origin is dict:
        return "a table of strings"
    return {
        str: "a string",
        int: "an integer",
        bool: "true or false",
        float: "a number",
        Path: "a path",
        dt.datetime: "a date",
    }.get(annotation, str(annotation))


def _coerce(value: Any, annotation: Any, key: str, root: Path, where: str) -> Any:
    def wrong() -> ConfigError:
        return ConfigError(f"'{key}' must be {_type_name(annotation)}, not {value!r}", path=where, key=key)

    origin = get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        options = [a for a in get_args(annotation) if a is not type(None)]
        if value == "" and Path in options:
            return None
        return _coerce(value, options[0], key, root, where)
    if origin is Literal:
        if value not in get_args(annotation):
            raise wrong()
        return value
    if origin is tuple:
        item_type = get_args(annotation)[0]
        if not isinstance(value, list):
            raise wrong()
        return tuple(_coerce(item, item_type, key, root, where) for item in value)
    if origin is dict and get_args(annotation)[1] is Any:
        if not isinstance(value, dict):
            raise wrong()
        return dict(value)
    if origin is dict:
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise wrong()
        return dict(value)
    if annotation is bool:
        if not isinstance(value, bool):
            raise wrong()
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong()
        if value < 0:
            raise ConfigError(f"'{key}' must not be negative, not {value!r}", path=where, key=key)
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong()
        if value < 0 or value != value:
            raise ConfigError(f"'{key}' must not be negative, not {value!r}", path=where, key=key)
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise wrong()
        return value
    if annotation is Path:
        if not isinstance(value, str) or not value:
            raise wrong()
        return (root / value).resolve()
    if annotation is dt.datetime:
        if isinstance(value, dt.datetime):
            return value
        if isinstance(value, dt.date):
            return dt.datetime(value.year, value.month, value.day)
        if isinstance(value, str):
            try:
                return dt.datetime.fromisoformat(value)
            except ValueError:
                raise wrong() from None
        raise wrong()
    raise wrong()


def decode_words(value: str) -> str:
    """`value` with its RFC 2047 encoded words decoded, as a mail client would show it (an encoded word
    in an unknown charset decoded as ASCII; one that does not decode left as it is)."""
    if "=?" not in value:
        return value
    try:
        chunks = decode_header(value)
    except (HeaderParseError, ValueError):
        return value
    text = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            text.append(chunk)
            continue
        try:
            text.append(chunk.decode(charset or "raw-unicode-escape", "replace"))
        except LookupError:
            text.append(chunk.decode("ascii", "replace"))
    return "".join(text)


def _one_line_problem(value: str) -> bool:
    """True when `value`, decoded as a mail client decodes a header, holds a line break or another
    control character (so it could end a header and start one of its own)."""
    for text in (value, decode_words(value)):
        if not text.isprintable() and any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in text):
            return True
    return False


_LOOPBACK_NAMES = ("localhost", "localhost.")


def _link_ok(url: str) -> bool:
    """https: with a host, http: only to this machine, or mailto: with an address."""
    parts = urlsplit(url)
    scheme = parts.scheme.casefold()
    if scheme == "mailto":
        return "@" in parts.path
    if scheme not in ("https", "http") or not parts.hostname:
        return False
    return scheme == "https" or is_loopback(parts.hostname)


def is_loopback(host: str) -> bool:
    """`localhost`, or an address of this machine (127.0.0.0/8, ::1)."""
    if host.casefold() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _overlap(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def _require_between(value: int, low: int, high: int, key: str, where: str) -> None:
    if not low <= value <= high:
        raise ConfigError(f"'{key}' must be between {low} and {high}, not {value}", path=where, key=key)


def _check_delivery_and_folders(config: Config, where: str) -> None:
    d = config.delivery
    _require_between(d.smtp_port, 1, 65535, "delivery.smtp_port", where)
    if not 0 < config.content.render_timeout <= 3600:
        raise ConfigError(
            "'content.render_timeout' must be more than 0 and at most 3600 seconds, not "
            f"{config.content.render_timeout:g}",
            path=where,
            key="content.render_timeout",
        )
    _require_between(d.connections, 1, MAX_CONNECTIONS, "delivery.connections", where)
    for key, seconds in (("smtp_timeout", d.smtp_timeout), ("smtp_data_timeout", d.smtp_data_timeout)):
        if not seconds > 0:
            raise ConfigError(
                f"'delivery.{key}' must be more than 0 seconds, not {seconds:g}",
                path=where,
                key=f"delivery.{key}",
            )
    feeds, archive = config.feeds.dir, config.digest.archive_dir
    if feeds == archive:
        raise ConfigError(
            "'feeds.dir' and 'digest.archive_dir' are one folder: each run would overwrite the other's "
            "index.html",
            path=where,
            key="digest.archive_dir",
            hint='the default is a folder inside the feeds: "feeds/digests"',
        )
    published = (("feeds.dir", feeds), ("digest.archive_dir", archive))
    if d.method == "outbox":
        for key, folder in published:
            if _overlap(d.outbox, folder) or _overlap(folder, d.outbox):
                raise ConfigError(
                    f"'delivery.outbox' and '{key}' overlap: the outbox holds every subscriber's mail, "
                    "and must not be published nor hold what is",
                    path=where,
                    key="delivery.outbox",
                )
    # Output written into the articles' folder would be read back as content (Hugo renders an .html).
    if config.hugo is not None:
        from .hugo_pages import content_dirs

        sources = [(config.hugo.root / folder).resolve() for folder, _ in content_dirs(config.hugo)]
    else:
        sources = [config.content.dir]
    outputs = [*published, *((("delivery.outbox", d.outbox),) if d.method == "outbox" else ())]
    for key, folder in outputs:
        for source in sources:
            if _overlap(folder, source) or _overlap(source, folder):
                raise ConfigError(
                    f"'{key}' and the content folder {source} overlap: digest would write its output "
                    "among the articles",
                    path=where,
                    key=key,
                )
    private = [("state.path", config.state.path)]
    if config.subscribers.file is not None:
        private.append(("subscribers.file", config.subscribers.file))
    for private_key, path in private:
        for key, folder in published:
            if _overlap(path, folder):
                raise ConfigError(
                    f"'{private_key}' is inside '{key}': it would be published with it",
                    path=where,
                    key=private_key,
                )


def _with_hugo_site(config: Config, raw: Mapping[str, Any]) -> Config:
    """The config with the Hugo site's values for every key digest's own file does not set."""
    from .hugo_config import read_hugo_config

    assert config.content.hugo_site is not None
    hugo = read_hugo_config(config.content.hugo_site)
    default = hugo.language(hugo.default_content_language)
    given_site, given_content = raw.get("site", {}), raw.get("content", {})
    site: dict[str, Any] = {}
    if "title" not in given_site and (default.title or hugo.title):
        site["title"] = default.title or hugo.title
    if "base_url" not in given_site and hugo.base_url:
        site["base_url"] = _hugo_base_url(hugo)
    if "language" not in given_site:
        site["language"] = default.language_code or default.lang
    if "timezone" not in given_site and (default.time_zone or hugo.time_zone):
        site["timezone"] = default.time_zone or hugo.time_zone
    content: dict[str, Any] = {"dir": hugo.root}
    if "topic_field" not in given_content:
        content["topic_field"] = next(iter(hugo.taxonomies.values()), "")
    feeds: dict[str, Any] = {}
    if "topic_page" not in raw.get("feeds", {}):
        feeds["topic_page"] = None  # the term's page on the Hugo site (`feeds.topic_page_url`)
    return dataclasses.replace(
        config,
        site=dataclasses.replace(config.site, **site),
        content=dataclasses.replace(config.content, **content),
        feeds=dataclasses.replace(config.feeds, **feeds),
        hugo=hugo,
    )


def _check_placeholders(template: str, key: str, known: set[str], where: str) -> None:
    try:
        template.format(**{name: "x" for name in known})
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"'{key}' has an unknown placeholder or a stray brace: {template!r} ({exc})",
            path=where,
            key=key,
            hint="known placeholders: " + ", ".join("{" + n + "}" for n in sorted(known)),
        ) from None


# RFC 5646's shape (what xml:lang and Babel accept): a primary subtag, then subtags of up to 8.
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,8}(?:[-_][A-Za-z0-9]{1,8})*")


def _absolute_web_url(url: str) -> bool:
    """http(s), a host, a valid port, and nothing a URL may not hold (spaces, controls)."""
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return False
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises ValueError when out of range or not a number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _hugo_base_url(hugo: HugoSite) -> str:
    return hugo.base_url if hugo.base_url.endswith("/") else hugo.base_url + "/"


def _hugo_config_file(hugo: HugoSite) -> str:
    return hugo.config_files[0] if hugo.config_files else str(hugo.root)


def _check(config: Config, where: str) -> None:
    """Rules that span a value's type: a real timezone, an absolute base URL, a usable permalink."""
    try:
        zoneinfo.ZoneInfo(config.site.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"'site.timezone' is not a known timezone: {config.site.timezone!r}",
            path=where,
            key="site.timezone",
            hint='an IANA name such as "Asia/Shanghai"',
        ) from None
    base_from_hugo = config.hugo is not None and config.site.base_url == _hugo_base_url(config.hugo)
    if not _absolute_web_url(config.site.base_url):
        raise ConfigError(
            f"'{'baseURL' if base_from_hugo else 'site.base_url'}' must be an absolute http(s) URL "
            f"(a host, a valid port, no spaces), not {config.site.base_url!r}",
            path=_hugo_config_file(config.hugo) if base_from_hugo and config.hugo else where,
            key="baseURL" if base_from_hugo else "site.base_url",
        )
    if config.feeds.url and not _absolute_web_url(config.feeds.url):
        raise ConfigError(
            f"'feeds.url' must be an absolute http(s) URL, not {config.feeds.url!r}",
            path=where,
            key="feeds.url",
        )
    if not _LANGUAGE_TAG.fullmatch(config.site.language):
        raise ConfigError(
            f"'site.language' must be a language tag (BCP 47), not {config.site.language!r}",
            path=where,
            key="site.language",
            hint='e.g. "zh-CN" or "en"',
        )
    pattern = config.content.permalink
    problem = plain_pattern_problem(legacy_permalink(pattern) or pattern)
    if problem:
        raise ConfigError(
            f"'content.permalink' {problem}: {pattern!r}",
            path=where,
            key="content.permalink",
            hint='Hugo\'s tokens, e.g. "/posts/:slugorfilename/" or "/:year/:month/:slug/"',
        )
    if config.feeds.topic_page is not None:
        _check_placeholders(config.feeds.topic_page, "feeds.topic_page", {"slug"}, where)
    if config.feeds.max_entries < 1:
        raise ConfigError("'feeds.max_entries' must be at least 1", path=where, key="feeds.max_entries")
    if config.delivery.max_attempts < 1:
        raise ConfigError(
            "'delivery.max_attempts' must be at least 1", path=where, key="delivery.max_attempts"
        )
    for key, value in (
        ("site.title", config.site.title),
        ("digest.subject", config.digest.subject),
        ("digest.from", config.digest.sender),
    ):
        if _one_line_problem(value):
            raise ConfigError(
                f"'{key}' must be one line of text, also once its RFC 2047 encoded words are decoded: "
                f"{decode_words(value)!r}",
                path=where,
                key=key,
            )
    for key, url in (
        ("digest.unsubscribe_url", config.digest.unsubscribe_url),
        ("digest.manage_url", config.digest.manage_url),
    ):
        if url and not _link_ok(url):
            raise ConfigError(
                f"'{key}' must be an https: URL (http: only on 127.0.0.1 or localhost) or a mailto: "
                f"address, not {url!r}",
                path=where,
                key=key,
            )
    _check_delivery_and_folders(config, where)
    _check_subscribers(config.subscribers, where)
    _check_server(config.server, where)
    for row in config.subscribers.list:
        if not isinstance(row, dict) or not isinstance(row.get("email"), str):
            raise ConfigError(
                "each entry of 'subscribers.list' must be a table with an 'email' string",
                path=where,
                key="subscribers.list",
            )


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _check_subscribers(section: SubscribersConfig, where: str) -> None:
    for key in ("mail_interval", "mails_per_day", "requests_per_ip", "ip_window"):
        if getattr(section, key) < 1:
            raise ConfigError(f"'subscribers.{key}' must be at least 1", path=where, key=f"subscribers.{key}")
    path = section.return_path
    if path and (path.count("{id}") != 1 or "@" not in path.replace("{id}", "") or not path.isascii()):
        raise ConfigError(
            f"'subscribers.return_path' must be an ASCII address holding {{id}} once, not {path!r}",
            path=where,
            key="subscribers.return_path",
            hint='e.g. "bounces+{id}@example.com" (VERP: a bounce names the delivery)',
        )
    if path:
        _check_placeholders(path, "subscribers.return_path", {"id"}, where)


def _check_server(server: ServerConfig, where: str) -> None:
    """An absolute public URL ending in "/", https unless it is on this machine; a usable port."""
    if server.public_url:
        parts = urlsplit(server.public_url)
        loopback = is_loopback(parts.hostname or "")
        if (
            parts.scheme not in ("https", "http")
            or not parts.netloc
            or (parts.scheme == "http" and not loopback)
            or parts.query
            or parts.fragment
            or not parts.path.endswith("/")
        ):
            raise ConfigError(
                f"'server.public_url' must be an https URL ending in /, not {server.public_url!r}",
                path=where,
                key="server.public_url",
                hint="http is allowed only on 127.0.0.1, ::1 or localhost; no query or fragment",
            )
    _require_between(server.port, 1, 65535, "server.port", where)
    if not _ENV_NAME.fullmatch(server.secret_env):
        raise ConfigError(
            f"'server.secret_env' must name an environment variable, not {server.secret_env!r}",
            path=where,
            key="server.secret_env",
            hint="the variable holds the signing keys; the keys never go in this file",
        )
    _require_between(server.threads, 1, 64, "server.threads", where)
    if not server.host:
        raise ConfigError("'server.host' must not be empty", path=where, key="server.host")
