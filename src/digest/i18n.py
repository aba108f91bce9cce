"""The site's language, resolved once: Babel's locale for dates and numbers, and the gettext catalogue
for the digest's own words.

`[site] language` is a BCP 47 tag. Dates and numbers follow its locale whatever it is (Babel's CLDR
data: `ja` reads 2025年6月25日, `de` 25. Juni 2025). The words come from the message catalogue
shipped in `locales/` (`digest.po`, read as it is: no compile step, so a checkout installed with
`pip install -e .` and a wheel work alike): Simplified Chinese (`zh`, `zh-CN`, `zh-Hans`, `zh-SG`) and
English. Every other language, Traditional Chinese (`zh-TW`, `zh-HK`, `zh-Hant`) included, gets the
English words with its own dates. A tag Babel does not know gets English words and ISO 8601 dates.
"""

from __future__ import annotations

import datetime as dt
import functools
import gettext
import io
from dataclasses import dataclass
from importlib import resources

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

DOMAIN = "digest"
SHIPPED = ("zh_CN", "en")  # the catalogues in locales/<name>/LC_MESSAGES/digest.po
FALLBACK = "en"


@dataclass(frozen=True)
class Localisation:
    """What one language tag resolves to."""

    tag: str  # as configured
    locale: Locale | None  # None: Babel does not know the tag (dates are ISO 8601)
    catalogue: str  # which shipped catalogue the words come from
    translations: gettext.NullTranslations

    def gettext(self, message: str) -> str:
        return self.translations.gettext(message)

    def pgettext(self, context: str, message: str) -> str:
        return self.translations.pgettext(context, message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.translations.ngettext(singular, plural, n)

    def date(self, value: dt.date) -> str:
        """A date as readers of the language write it (CLDR's long format): 2025年6月25日, June 25, 2025."""
        if self.locale is None:
            return value.isoformat()
        return str(format_date(value, format="long", locale=self.locale))

    def number(self, value: int) -> str:
        return str(format_decimal(value, locale=self.locale or FALLBACK))


@functools.lru_cache(maxsize=32)
def localisation(tag: str) -> Localisation:
    """The localisation of a `[site] language` tag (cached: resolved once per tag and process)."""
    locale = _parse(tag)
    catalogue = _catalogue_for(locale)
    return Localisation(tag, locale, catalogue, _translations(catalogue))


def _parse(tag: str) -> Locale | None:
    """The locale of the tag, or of its longest prefix Babel knows (RFC 4647 lookup: `en-US-x-twain` is
    `en_US`); None when not even the language is known."""
    subtags = tag.strip().replace("_", "-").split("-")
    for end in range(len(subtags), 0, -1):
        try:
            return Locale.parse("_".join(subtags[:end]))
        except (UnknownLocaleError, ValueError, TypeError):
            continue
    return None


def _catalogue_for(locale: Locale | None) -> str:
    if locale is None:
        return FALLBACK
    if locale.language == "zh":
        # Babel fills in the script a tag implies (zh-TW → Hant); a bare `zh` is Simplified.
        return "zh_CN" if locale.script in (None, "Hans") else FALLBACK
    return locale.language if locale.language in SHIPPED else FALLBACK


@functools.lru_cache(maxsize=len(SHIPPED))
def _translations(catalogue: str) -> gettext.NullTranslations:
    """The shipped .po file as gettext translations, read from the package (a folder or a wheel)."""
    source = resources.files("digest") / "locales" / catalogue / "LC_MESSAGES" / f"{DOMAIN}.po"
    with source.open("rb") as handle:
        parsed = read_po(handle, locale=catalogue, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, parsed)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)
