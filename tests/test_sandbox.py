"""Templates are the editors', not trusted code: every one renders in Jinja's sandbox (issue 10)."""

from __future__ import annotations

import shutil

import pytest

from digest import jobs
from digest.config import load_config
from digest.errors import DigestError
from digest.preview import build_preview

from conftest import NOW, PROJECT, Site, article_text
from smtp_server import write_run_config, write_subscribers

# The classic escape from a template to the process: a global's function, its module globals, `os`.
EXPLOIT = "{{ cycler.__init__.__globals__.os.popen('id').read() }}"


@pytest.fixture
def hostile_site(site: Site) -> Site:
    write_run_config(site.root)
    write_subscribers(site.root, [("all@example.com", "All", "")])
    site.add("a.md", article_text("Alpha", "2025-06-25T10:00:00+08:00"))
    folder = site.root / "templates"
    folder.mkdir()
    shutil.copy(PROJECT / "templates" / "digest.txt.j2", folder / "digest.txt.j2")
    with (folder / "digest.txt.j2").open("a", encoding="utf-8") as handle:
        handle.write(EXPLOIT + "\n")
    return site


def test_a_template_cannot_reach_the_process_from_run(hostile_site: Site) -> None:
    config = load_config(hostile_site.root / "config.toml")
    with pytest.raises(DigestError) as caught:
        jobs.run(config, NOW)
    message = str(caught.value)
    assert message.startswith(f"{hostile_site.root / 'templates' / 'digest.txt.j2'}:52: template error: ")
    assert "access to attribute '__init__' of 'type' object is unsafe" in message
    assert not (hostile_site.root / "outbox").exists()


def test_a_template_cannot_reach_the_process_from_the_preview(hostile_site: Site) -> None:
    config = load_config(hostile_site.root / "config.toml")
    with pytest.raises(DigestError, match="is unsafe"):
        build_preview(config, NOW)
