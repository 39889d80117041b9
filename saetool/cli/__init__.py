"""The typer CLI: thin commands over saetool's Python API."""
