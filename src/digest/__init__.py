"""digest: per-topic Atom feeds and a weekly email digest from a folder of Markdown articles."""

__version__ = "0.1.0"
