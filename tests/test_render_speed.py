"""Rendering leaves out of each document's inline passes the Python-Markdown patterns whose characters
it lacks (issue 11): the HTML must be byte for byte what Python-Markdown makes trying every pattern.

Each document below uses some inline patterns and lacks the characters of others, in both markups
(digest's extensions, and the Goldmark set of a Hugo page: smarty, tilde, task lists, magic links);
every pattern is used alone, with all the others, and left out of a document holding all the others.
"""

from __future__ import annotations

import pytest

from digest.render import MarkdownConverter, markdown_to_html

# Uses of each inline pattern (named after it), each with few characters beyond its own.
USES = {
    "backtick": "a `code` span",
    "backtick double": "``two `ticks` inside``",
    "escape": "an escaped \\# hash",
    "escape star": "\\*not emphasis\\*",
    "footnote": "a note[^n]\n\n[^n]: the note",
    "reference": "a [reference][r] link\n\n[r]: target",
    "link": "a [link](target)",
    "image_link": "an image ![alt](img)",
    "image_reference": "an image ![alt][i]\n\n[i]: img",
    "short_reference": "a short [r2] reference\n\n[r2]: target2",
    "short_image_ref": "a short ![i2] image\n\n[i2]: img2",
    "autolink": "autolink <https://example.com/auto>",
    "autolink dotless": "<http://localhost>",
    "automail": "mail <someone@example.com>",
    "automail dotless": "<someone@localhost>",
    "linebreak": "first line  \nsecond line",
    "linebreak tab": "第一\t\n第二",  # the tab becomes two spaces: a line break with no space in the text
    "html": "inline <span>html</span>",
    "html comment": "a <!-- comment -->",
    "entity named": "&copy;",
    "entity number": "&#169;",
    "entity hex": "&#x263A;",
    "entity before quote": "&nbsp;'quoted'",
    "entity in a link": "https://example.com/?a=1&amp;b=2",
    "em_strong star": "*em* **strong** ***both***",
    "em_strong underscore": "_under_ __twice__",
    "delimiter": "~~struck~~",
    "magic-link": "bare https://example.com/bare",
    "magic-link www": "bare www.example",
    "magic-mail": "bare mail someone@example.com",
    "smarty-ellipses": "and so on...",
    "smarty-en-dashes": "en -- dash",
    "smarty-em-dashes": "em --- dash",
    "smarty-left-angle-quotes": "<<left",
    "smarty-right-angle-quotes": "right>>",
    "smarty-quotes single": "'single'",
    "smarty-quotes double": '"double"',
    "smarty-quotes single inside": "a 'single' quote",
    "smarty-quotes double inside": 'a "double" quote',
    "smarty-quotes first": "\".\" first, and '?' first",
    "smarty-quotes single double": "'\"Hi\" she said'",
    "smarty-quotes closing both": "'He said \"hi\"' and \"she said 'hi'\"",
    "smarty-quotes at a line end": 'word"\nnext',
    "smarty-quotes apostrophe": "it's",
    "smarty-quotes decade": "the '80s",
    "smarty-quotes decade first": "'80s",
    "smarty-quotes dot": "'.' and \".\"",
    "smarty-quotes nested": "\"'Hello,' he said,\" she said. '\"Hi,\" she said'",
    "smarty-quotes nested inside": "He said, \"'Quoted' words.\" and 'a \"b\"'",
    "smarty-quotes after dashes": "--'dash' and –'en' and —\"em\"",
    "smarty-quotes lone": "a lone \" quote and a ' single",
    "smarty-quotes trailing": "word' and word\" and words' s",
    "task list": "- [x] done\n- [ ] to do",
}
# Their characters, present but matching nothing (each alone, and all at once).
NEAR_MISSES = [
    "a ` lone tick",
    "a \\ lone backslash",
    "brackets [ alone ] and ^ a caret",
    "a ! bang",
    "less < and greater > than",
    "at @ sign",
    "and & ampersand ; semicolon",
    "star * and underscore _ alone",
    "tilde ~ alone",
    "slash / and dot .",
    "dash - and quote ' and \" double",
]
# Characters only inside code, which the inline patterns never see.
IN_CODE = "```\n`*_[x](y)![i](j)<b>&amp;~~s~~\n```\n\n    <i>indented</i> `code` [^x]\n\ntext after"
# Text with none of the patterns' characters.
PLAIN = "纯文本，没有任何标记。\n\n第二段：数字123与字母abc，没有空格"


def documents() -> list[str]:
    uses = list(USES.values())
    return [
        PLAIN,
        IN_CODE,
        *uses,
        *(use.replace(" ", "") for use in uses),  # where a space was a pattern's character
        "\n\n".join(uses),
        *("\n\n".join(u for u in uses if u != left_out) for left_out in uses),
        *NEAR_MISSES,
        "\n\n".join(NEAR_MISSES),
        *(f"{use}\n\n{miss}" for use in uses for miss in NEAR_MISSES[::3]),
        "\n\n".join([*uses, IN_CODE, *NEAR_MISSES]),
    ]


@pytest.mark.parametrize("markup", ["markdown", "goldmark"])
def test_every_document_renders_as_with_every_pattern_tried(markup: str) -> None:
    everything = MarkdownConverter(markup, skip=False)
    differ = [doc for doc in documents() if markdown_to_html(doc, markup) != everything.convert(doc)]
    assert differ == []


@pytest.mark.parametrize("markup", ["markdown", "goldmark"])
def test_the_uses_are_rendered_by_their_patterns(markup: str) -> None:
    """The documents above do exercise what they name (else the comparison proves little)."""
    html = markdown_to_html("\n\n".join(USES.values()), markup)
    for expected in [
        "<code>code</code>",
        "<code>two `ticks` inside</code>",
        "escaped # hash",
        'class="footnote-ref"',
        '<a href="target">reference</a>',
        '<a href="target">link</a>',
        '<img alt="alt" src="img">',
        '<img alt="i2" src="img2">',
        '<a href="target2">r2</a>',
        'href="https://example.com/auto"',
        "&#109;",  # automail's obfuscation
        "first line<br>",
        "第一<br>",
        "<span>html</span>",
        "<!-- comment -->",
        "<p>&copy;</p>",
        "<p>&#169;</p>",
        "<em>em</em>",
        "<strong><em>both</em></strong>",
        "<strong>twice</strong>",
    ]:
        assert expected in html
    goldmark = [
        "<del>struck</del>",
        'href="https://example.com/bare"',
        'href="http://www.example"',
        'bare mail <a href="&#109;',  # obfuscated, as automail's
        "the &rsquo;80s",
        "&hellip;",
        "&ndash;",
        "&mdash;",
        "&laquo;",
        "&raquo;",
        "&lsquo;single&rsquo;",
        "&ldquo;double&rdquo;",
        "it&rsquo;s",
        "\u2611 done",
    ]
    for expected in goldmark:
        assert (expected in html) == (markup == "goldmark"), expected


@pytest.mark.parametrize("markup", ["markdown", "goldmark"])
def test_a_document_without_their_characters_skips_every_pattern(markup: str) -> None:
    """Every inline pattern of both markups has its characters listed (a pattern renamed by a newer
    Python-Markdown would be tried on every text node again, silently slower)."""
    converter = MarkdownConverter(markup)
    assert [len(patterns) for patterns in converter.patterns_for(PLAIN)] == [0] * len(converter.passes)
    everything = "\n\n".join(USES.values())
    assert [len(patterns) for patterns in converter.patterns_for(everything)] == [
        len(patterns) for _, patterns, _ in converter.passes
    ]
