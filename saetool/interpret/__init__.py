"""``saetool interpret``: what each SAE feature responds to (examples, statistics, labels)."""
