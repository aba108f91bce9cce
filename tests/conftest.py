"""Shared test helpers: a site in a temporary folder, article text, a fixed clock."""

from __future__ import annotations

import datetime as dt
import shutil
import textwrap
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
SHARED = PROJECT.parent / "shared"
ATOM_SCHEMA = SHARED / "schema" / "atom.rng"
SEEDS = PROJECT / "seeds"
SEED_ARTICLE = SEEDS / "000_040d16bb7ab5a125.txt"

# The clock the golden files are built at: a Monday morning, after every seed article.
NOW = dt.datetime(2025, 6, 30, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
NOW_ISO = NOW.isoformat()

BASE_CONFIG = """\
[site]
title = "Test Site"
base_url = "https://example.com/"
language = "zh-CN"
timezone = "Asia/Shanghai"
author = "Editors"

[content]
dir = "content"

[feeds]
dir = "feeds"

[state]
path = "state/state.sqlite3"

[digest]
archive_dir = "feeds/digests"
from = "Test Site <digest@example.com>"
unsubscribe_url = "https://example.com/unsubscribe?email={email}"
manage_url = "https://example.com/preferences?email={email}"

[delivery]
outbox = "outbox"
"""


def article_text(
    title: str = "Hello",
    date: str = "2025-06-25T17:10:04+08:00",
    body: str = "Body text.",
    **fields: object,
) -> str:
    """Front matter + body, YAML; extra fields are written as YAML flow values (lists as [a, b])."""
    lines = ["---", f"title: {title!r}" if title is not None else "", f"date: {date}" if date else ""]
    for key, value in fields.items():
        if isinstance(value, list | tuple):
            inner = ", ".join(f'"{v}"' for v in value)
            lines.append(f"{key}: [{inner}]")
        elif isinstance(value, bool):
            lines.append(f"{key}: {'true' if value else 'false'}")
        else:
            lines.append(f"{key}: {value}")
    lines.append("---")
    return "\n".join(line for line in lines if line) + "\n\n" + body + "\n"


class Site:
    """A digest site in a temporary folder: config.toml, content/, and the folders digest writes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.content = root / "content"
        self.content.mkdir(parents=True, exist_ok=True)
        self.config_path = root / "config.toml"
        self.write_config()

    def write_config(self, extra: str = "", base: str = BASE_CONFIG) -> Path:
        """The base config with `extra` TOML appended to it (a later table of the same name is an error
        in TOML, so `extra` should add keys to new tables or use dotted keys such as `feeds.max_entries`)."""
        self.config_path.write_text(base + "\n" + textwrap.dedent(extra), encoding="utf-8")
        return self.config_path

    def set(self, section: str, **values: object) -> None:
        """Set keys of one config table, e.g. site.set("feeds", max_entries=3), replacing earlier values."""
        import json

        lines = self.config_path.read_text(encoding="utf-8").split("\n")
        header = f"[{section}]"
        if header not in lines:
            lines += ["", header]
        start = lines.index(header) + 1
        end = next((i for i in range(start, len(lines)) if lines[i].startswith("[")), len(lines))
        for key, value in values.items():
            line = f"{key} = {json.dumps(value, ensure_ascii=False)}"
            existing = [i for i in range(start, end) if lines[i].split("=")[0].strip() == key]
            if existing:
                lines[existing[0]] = line
            else:
                lines.insert(start, line)
                end += 1
        self.config_path.write_text("\n".join(lines), encoding="utf-8")

    def add(self, name: str, text: str | bytes) -> Path:
        path = self.content / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return path

    def add_seeds(self) -> None:
        """The article the project started from (seeds/ holds more samples; see add_all_seeds)."""
        shutil.copy(SEED_ARTICLE, self.content / SEED_ARTICLE.name)

    def add_all_seeds(self) -> None:
        shutil.copytree(SEEDS, self.content, dirs_exist_ok=True)

    @property
    def feeds(self) -> Path:
        return self.root / "feeds"

    def config(self):  # type: ignore[no-untyped-def]
        from digest.config import load_config

        return load_config(self.config_path)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path / "site")


@pytest.fixture
def run_site(site: Site) -> Site:
    """A site that sends its digest to the outbox: two subscribers (all topics; AI only), two articles."""
    from smtp_server import write_run_config, write_subscribers

    write_run_config(site.root)
    write_subscribers(site.root, [("all@example.com", "All", ""), ("ai@example.com", "AI fan", "AI")])
    site.add("a.md", article_text("Alpha", "2025-06-25T10:00:00+08:00", main_topics=["AI"]))
    site.add("b.md", article_text("Beta", "2025-06-27T10:00:00+08:00", main_topics=["Policy"]))
    return site
