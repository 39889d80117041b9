"""saetool-csv: an example saetool plugin adding a ``csv`` corpus source."""

__version__ = "0.1.0"
