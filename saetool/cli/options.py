"""Options shared by stage commands, so every stage spells them the same way."""

from __future__ import annotations

import typer

from saetool.errors import SaetoolError

# Deferred imports: loaded by `saetool --help`; the model source module loads only when --trust-remote-code is read.

OUTPUT = typer.Option(None, "--output", "-o", help="Output artifact path (a sensible default name when omitted).")
OVERWRITE = typer.Option(False, "--overwrite", help="Replace the output if it exists.")
RESUME = typer.Option(False, "--resume", help="Continue a killed run from its partial output.")
JSON = typer.Option(False, "--json", help="Print JSON to stdout instead of a table.")
BACKEND = typer.Option("transformers", "--backend", help="Model backend: transformers or transformer-lens (or a plugin's).")
DEVICE = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N or mps.")
DTYPE = typer.Option("float32", "--dtype", help="Model dtype: float32, float16, bfloat16.")


def _trust_remote_code(value: bool) -> bool:
    """Set once per command, so every model, tokenizer and config it loads follows the flag."""
    from saetool.models.source import trust_remote_code

    trust_remote_code(value)
    return value


TRUST_REMOTE_CODE = typer.Option(
    False,
    "--trust-remote-code",
    callback=_trust_remote_code,
    help="Let a model folder or hub repo run the Python code it ships (auto_map in its config). Off by default: such a model is refused.",
)


def key_values(items: list[str], flag: str, *, example: str) -> dict[str, str]:
    """``["a=1", "b=x,y"]`` -> ``{"a": "1", "b": "x,y"}`` (a later KEY wins); one-line error for an item without ``=``."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SaetoolError(f"{flag} must look like KEY=VALUE (got {item!r})", hint=f"e.g. {flag} {example}")
        out[key.strip()] = value.strip()
    return out
