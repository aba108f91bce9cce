"""Where templates are found, and the one sandboxed Jinja environment every template renders in.

Small and light on purpose (Jinja only): `digest build` renders the feeds' index page and OPML with it
and must not load the email stage (premailer, cssutils) to do so. The digest (templating.py), the
preview and the feeds' pages all take their environment, folders and error lines from here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from .config import Config
from .errors import DigestError

if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment

# The shipped templates, as package data: `src/digest/templates` is a symlink to the repository's
# `templates/` (the editors' copy), and a wheel holds a copy of the files (pyproject's package-data).
PACKAGE_TEMPLATES = Path(__file__).resolve().parent / "templates"
# The repository's own folder, for a checkout where the symlink did not survive (git core.symlinks=false).
PROJECT_TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def template_folders(config: Config | None) -> list[Path]:
    """Where templates are looked up, first match wins: the editors' `[digest] templates`, the
    `templates/` beside the config file, then the shipped ones (so an editor may override one file).
    Without a config (it failed to load), only the shipped ones."""
    folders: list[Path] = []
    candidates: list[Path | None] = [PACKAGE_TEMPLATES, PROJECT_TEMPLATES]
    if config is not None:
        custom = config.digest.templates
        if custom is not None and not custom.is_dir():
            raise DigestError(
                f"templates folder not found: {custom}",
                path=str(config.path),
                key="digest.templates",
                hint="point [digest] templates at a folder",
            )
        candidates[:0] = [custom, config.root / "templates"]
    for folder in candidates:
        if folder is not None and folder.is_dir() and folder.resolve() not in folders:
            folders.append(folder.resolve())
    return folders


# The feeds folder's own pages (feeds.py renders them; a build fingerprints them without loading feeds.py).
FEEDS_INDEX_TEMPLATE = "feeds_index.html.j2"
FEEDS_OPML_TEMPLATE = "feeds.opml.j2"


def feed_pages_fingerprint(config: Config) -> str:
    """Changes when the feeds' index page's or OPML's template does (an editor's override included)."""
    return template_fingerprint(config, (FEEDS_INDEX_TEMPLATE, FEEDS_OPML_TEMPLATE))


def template_fingerprint(config: Config, names: Iterable[str]) -> str:
    """Changes whenever one of these templates would: which file is found for each name, and its bytes
    (cheap, and without Jinja: an unchanged build checks it before deciding there is nothing to do)."""
    digest = hashlib.sha256()
    folders = template_folders(config)
    for name in names:
        found = next((folder / name for folder in folders if (folder / name).is_file()), None)
        digest.update(f"\0{name}\0{found}\0".encode())
        if found is not None:
            digest.update(found.read_bytes())
    return digest.hexdigest()


def sandboxed_environment(config: Config | None) -> SandboxedEnvironment:
    """A sandboxed environment over the template folders, autoescaped for everything but plain-text
    templates (HTML escaping is right for XML too: OPML). Templates are the editors', and none may
    reach the process: `cycler.__init__.__globals__.os` is refused with a template error.

    A new one each time: Jinja's template cache checks only the file a template came from, so an
    override added later to an earlier folder would go unseen by a long-lived process.
    """
    from jinja2 import ChoiceLoader, FileSystemLoader, StrictUndefined, select_autoescape
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(
        loader=ChoiceLoader([FileSystemLoader(folder) for folder in template_folders(config)]),
        autoescape=select_autoescape(disabled_extensions=("txt", "txt.j2"), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_template(config: Config | None, name: str, context: Mapping[str, object]) -> str:
    """Template `name` filled with `context`; a broken or unsafe template is a DigestError naming its
    file and line."""
    from jinja2 import TemplateError

    try:
        return sandboxed_environment(config).get_template(name).render(context)
    except TemplateError as exc:
        raise template_error(exc) from None


def template_error(exc: Exception) -> DigestError:
    """A Jinja error as one line naming the template file and line.

    Syntax errors carry both; errors while rendering (an undefined name) don't, but Jinja rewrites the
    traceback so that the template's own frame names its file and line: take them from there.
    """
    name = getattr(exc, "filename", None) or getattr(exc, "name", None)
    line = getattr(exc, "lineno", None)
    if name is None:
        trace = exc.__traceback__
        while trace is not None:
            if trace.tb_frame.f_code.co_filename.endswith(".j2"):
                name, line = trace.tb_frame.f_code.co_filename, trace.tb_lineno
            trace = trace.tb_next
    message = getattr(exc, "message", None) or str(exc)
    return DigestError(
        f"template error: {message}", path=str(name or "template"), line=line, hint="see [digest] templates"
    )
