"""The message catalogues (i18n.py): complete, and shipped in a wheel as they are in the checkout."""

from __future__ import annotations

import fnmatch
import tomllib

from babel.messages.pofile import read_po

from conftest import PROJECT

LOCALES = PROJECT / "src" / "digest" / "locales"


def catalogue(name: str) -> dict[object, object]:
    with (LOCALES / name / "LC_MESSAGES" / "digest.po").open("rb") as handle:
        parsed = read_po(handle)
    return {(message.context, message.id): message.string for message in parsed if message.id}


def test_the_chinese_catalogue_translates_every_message() -> None:
    english, chinese = catalogue("en"), catalogue("zh_CN")
    assert sorted(map(str, chinese)) == sorted(map(str, english))
    untranslated = [key for key, value in chinese.items() if not value or value == key[1]]
    assert untranslated == []


def test_the_package_data_ships_every_catalogue_and_template() -> None:
    """A wheel holds what `[tool.setuptools.package-data]` names: every .po file and template must match."""
    patterns = tomllib.loads((PROJECT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    package = PROJECT / "src" / "digest"
    shipped = [path.relative_to(package).as_posix() for path in LOCALES.rglob("*.po")]
    shipped += [f"templates/{path.name}" for path in (PROJECT / "templates").iterdir()]
    missing = [name for name in shipped if not any(fnmatch.fnmatch(name, p) for p in patterns["digest"])]
    assert len(shipped) >= 8 and missing == []
