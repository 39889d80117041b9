"""saetool-textstats: a completion metric and a feature labeler, as a separate plugin package."""

__version__ = "0.1.0"
