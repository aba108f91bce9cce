"""shortcodes.py: Hugo's built-in shortcodes as safe HTML, any other removed with its inner text kept."""

from __future__ import annotations

from digest.shortcodes import calls, expand, parse_args


def _expand(text: str, **params: object):  # type: ignore[no-untyped-def]
    targets = {"posts/a.md": "https://x.org/a/"}
    return expand(text, lambda target, lang: targets.get(target), {"title": "T"}, params)


def test_arguments_are_read_as_hugo_reads_them() -> None:
    assert parse_args(' "a b" `raw "q"` bare key="v \\"w\\"" n=3') == (
        ("a b", 'raw "q"', "bare"),
        {"key": 'v "w"', "n": "3"},
    )


def test_paired_nested_and_self_closing_shortcodes() -> None:
    found = calls("{{< a x >}}in {{< b />}} {{< a >}}deep{{< /a >}}{{< /a >}} {{% c %}}")
    assert [(c.name, c.inner) for c in found] == [("a", "in {{< b />}} {{< a >}}deep{{< /a >}}"), ("c", None)]


def test_unknown_shortcodes_go_their_inner_text_stays_and_each_is_named_once() -> None:
    result = _expand("{{< box >}}kept **text**{{< /box >}} {{< box >}} {{% tip %}}tip{{% /tip %}}")
    assert result.text == "kept **text**  tip"
    assert result.unknown == ["box", "tip"]


def test_an_escaped_shortcode_is_text_with_no_shortcode_left() -> None:
    result = _expand("write {{</* figure src=x */>}} like this")
    assert result.text == "write {{&lt; figure src=x &gt;}} like this"
    assert "{{<" not in result.text and result.unknown == []


def test_ref_resolves_to_the_permalink_and_an_unknown_target_is_reported() -> None:
    assert _expand('[a]({{< ref "posts/a.md#part" >}})').text == "[a](https://x.org/a/#part)"
    missing = _expand('[b]({{< relref "nope.md" >}})')
    assert (missing.text, missing.unresolved) == ("[b]()", ["nope.md"])


def test_embeds_become_links_and_code_is_escaped() -> None:
    assert _expand('{{< vimeo id="123" >}}').text == '<a href="https://vimeo.com/123">Vimeo video</a>'
    assert _expand("{{< gist spf13 7896402 >}}").text == (
        '<a href="https://gist.github.com/spf13/7896402">gist spf13/7896402</a>'
    )
    assert "<script" not in _expand('{{< youtube id="<script>" >}}').text
    code = _expand("{{< highlight html >}}\n<b>x</b>\n{{< /highlight >}}").text
    assert code.strip() == '<pre><code class="language-html">&lt;b&gt;x&lt;/b&gt;</code></pre>'


def test_param_reads_the_page_then_the_site_and_escapes() -> None:
    result = _expand('{{< param title >}} {{< param "author.name" >}}', author={"name": "<A>"})
    assert result.text == "T &lt;A&gt;"


def test_malformed_and_unclosed_openers_leave_no_shortcode_and_do_not_hang() -> None:
    result = _expand("a {{< x \n b {{% y %}} c {{< figure src=/a.png")
    assert "{{<" not in result.text and "{{%" not in result.text
    assert result.unknown == ["y"]
    many = _expand("{{< a " * 50_000 + ">}}" + "{{< b >}}" * 50_000)  # linear: read once
    assert "{{<" not in many.text and many.unknown == ["a", "b"]


def test_shortcodes_nested_past_any_sane_depth_are_text_not_a_crash() -> None:
    deep = "{{< n >}}" * 5_000 + "core" + "{{< /n >}}" * 5_000
    result = _expand(deep)
    assert result.text == "core" and result.unknown == ["n"]
