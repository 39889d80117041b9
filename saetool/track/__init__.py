"""``saetool track``: SAE features linked across layers into tracks.

:mod:`saetool.track.link` scores feature pairs of adjacent layers (decoder
cosine, activation correlation), :mod:`saetool.track.tracker` turns the links
into tracks and events (continue, split, merge, birth, death),
:mod:`saetool.track.api` runs it over a corpus and writes a ``tracks``
artifact, :mod:`saetool.track.text` does the same per token of given prompts
(hypothesis tracks) and compares two prompt sets.
"""
