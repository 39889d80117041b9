"""When two sets of prompts pair line by line: the rule ``track --compare`` and ``select`` share.

Two files pair when they hold as many prompts and at least half of their line pairs share an
opening of :data:`MIN_SHARED_OPENING` tokens: line i of both is the same question (a true and a
false answer; a harmful request and its ordinary twin), not two unrelated lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from saetool.errors import SaetoolError

PAIRINGS = ("auto", "paired", "unpaired")
#: ``auto`` pairs two files of equal length when at least half of their line pairs share an opening
#: of this many tokens (after any leading tokens every row has, such as BOS).
MIN_SHARED_OPENING = 3


def check_pairing(pairing: str) -> None:
    if pairing not in PAIRINGS:
        raise SaetoolError(f"unknown --pairing {pairing!r}", hint="choose one of: " + ", ".join(PAIRINGS))


def first_difference(a: Sequence[int], b: Sequence[int]) -> int:
    """The first position where two token rows differ (the shorter one's length when one is a prefix of the other)."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


@dataclass
class PairDecision:
    """Whether two sets are compared pair by pair; per pair the first differing position
    (empty when the sets differ in size); ``why``: the reason when they are not paired."""

    paired: bool
    firsts: list[int]
    why: str


def decide_pairing(pairing: str, rows_a: Sequence[Sequence[int]], rows_b: Sequence[Sequence[int]], *, skip: int = 0) -> PairDecision:
    """Apply ``--pairing`` (``auto``, ``paired``, ``unpaired``) to two sets of token rows.
    ``skip``: leading tokens every row has (BOS), not counted as a shared opening.
    ``paired`` with sets of different sizes is a one-line error."""
    check_pairing(pairing)
    same = len(rows_a) == len(rows_b)
    if pairing == "paired" and not same:
        raise SaetoolError(f"--pairing paired needs two sets of equal size, one prompt per line of each (got {len(rows_a)} and {len(rows_b)})",
                           hint="pair the files line by line, or use --pairing unpaired")
    firsts = [first_difference(x, y) for x, y in zip(rows_a, rows_b)] if same else []
    shared = [max(0, f - skip) for f in firsts]
    short = sum(n < MIN_SHARED_OPENING for n in shared)
    if pairing == "unpaired":
        return PairDecision(False, firsts, "--pairing unpaired")
    if not same:
        return PairDecision(False, firsts, f"{len(rows_a)} and {len(rows_b)} prompts")
    if pairing == "auto" and (not shared or short * 2 > len(shared)):
        return PairDecision(False, firsts, f"equal length, but {short} of {len(shared)} line pairs share fewer than {MIN_SHARED_OPENING} "
                                           "opening tokens: not the same questions; --pairing paired pairs them anyway")
    return PairDecision(True, firsts, "")
