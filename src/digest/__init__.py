"""digest: per-topic Atom feeds and a weekly email digest from a folder of Markdown articles."""

__version__ = "0.1.0"
# The distribution's name on PyPI ("digest" there is another project); the package and command are `digest`.
DISTRIBUTION = "digest-publisher"
