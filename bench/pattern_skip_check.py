"""Check that leaving out the inline patterns a document lacks the characters of (render.py's
`MarkdownConverter(skip=True)`) changes no byte of any document's HTML: every Markdown file under the
given folders (a content folder, a generated corpus, seeds/), in both markups (digest's extensions and
the Goldmark set of a Hugo page), with and without skipping.

    .venv/bin/python bench/pattern_skip_check.py ../benchwork/corpus-10000 seeds

Prints the count compared and each document whose HTML differs; exits 1 if any does.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from digest.render import MarkdownConverter

MARKUPS = ("markdown", "goldmark")


def bodies(folders: list[str]) -> list[tuple[str, str]]:
    """(path, text after the front matter) of every .md file under `folders`; a file without front
    matter, or with one not closed, is compared whole."""
    found = []
    for folder in folders:
        for path in sorted(Path(folder).rglob("*.md")):
            text = path.read_bytes().decode("utf-8-sig", "replace").replace("\r\n", "\n").replace("\r", "\n")
            for fence in ("---", "+++"):
                if text.startswith(fence + "\n") and f"\n{fence}\n" in text:
                    text = text.split(f"\n{fence}\n", 1)[1]
                    break
            found.append((str(path), text))
    return found


def main(folders: list[str]) -> int:
    documents = bodies(folders)
    differ = 0
    for markup in MARKUPS:
        plain, skipping = MarkdownConverter(markup, skip=False), MarkdownConverter(markup)
        spent = {False: 0.0, True: 0.0}
        for path, body in documents:
            text = body
            started = time.process_time()
            expected = plain.convert(text)
            spent[False] += time.process_time() - started
            started = time.process_time()
            got = skipping.convert(text)
            spent[True] += time.process_time() - started
            if got != expected:
                differ += 1
                print(f"{markup}: {path}: HTML differs", flush=True)
        print(
            f"{markup}: {len(documents)} documents compared; CPU {spent[False]:.2f} s without skipping, "
            f"{spent[True]:.2f} s with ({1 - spent[True] / max(spent[False], 1e-9):.0%} less)"
        )
    print("identical" if not differ else f"{differ} documents differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["seeds"]))
