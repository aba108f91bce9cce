"""The fast front-matter reader agrees with PyYAML whenever it answers at all."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from digest import simple_yaml
from digest.front_matter import split_front_matter

from conftest import SHARED

TRICKY = [
    "title: plain\ndate: 2025-06-25T17:10:04+08:00\ndraft: false",
    "title: 'it''s quoted'\ntags:\n- a\n- b",
    'title: "with \\"escapes\\" and \\\\ and \\n"\n',
    "draft: yes\nother: No\nnothing: ~\nempty:\n",
    "date: 2025-06-25\nlater: 2025-06-25 17:10:04\nloose: 2025-06-25 17:10",
    "tags: [a, b, 'c']\ntopics: []\nmixed: [x, \"y, z\"]",
    "weight: 3\n",
    "ratio: 0.5\n",
    "title: a: b\n",
    "title: x # comment\n",
    "key: &anchor value\nother: *anchor\n",
    "nested:\n  inner: 1\n",
    "folded: >\n  text\n",
    "title: ok\ntitle: twice\n",
    "yes: key is a bool\n",
    "list:\n  - - nested\n",
    "url: https://example.com/a:b\n",
    "tags: [http://x]\n",
    'title: "unterminated\n',
    'title: "\\u00e9"\n',
    "# comment\ntitle: after comment\n\n",
    "title: 中文标题：带全角冒号\nsummary: 曾几何时，Kimi……\n",
    "title: trailing spaces   \n",
    "- top level list\n",
    "title: '@mention'\n",
    'title: "#hash"\n',
]


@pytest.mark.parametrize("text", TRICKY)
def test_fast_reader_equals_pyyaml_or_declines(text: str) -> None:
    fast = simple_yaml.load(text)
    if fast is not None:
        assert fast == yaml.load(text, Loader=yaml.SafeLoader)


def test_fast_reader_answers_for_the_plain_shape() -> None:
    assert simple_yaml.load("title: T\ntags:\n  - a\n  - b\ndraft: false\n") == {
        "title": "T",
        "tags": ["a", "b"],
        "draft": False,
    }


def test_fast_reader_equals_pyyaml_on_a_generated_corpus(tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    subprocess.run(
        [
            sys.executable,
            str(SHARED / "corpus" / "gen.py"),
            "--n",
            "400",
            "--out",
            str(out),
            "--seed",
            "7",
            "--topics",
            "14",
        ],
        check=True,
        capture_output=True,
    )
    answered = 0
    for path in sorted(out.iterdir()):
        text = path.read_text(encoding="utf-8")
        front_matter = split_front_matter(text)[1]
        fast = simple_yaml.load(front_matter)
        if fast is not None:
            answered += 1
            assert fast == yaml.load(front_matter, Loader=yaml.SafeLoader), path.name
    assert answered >= 380  # the generator writes the plain shape: the fast path must take nearly all
