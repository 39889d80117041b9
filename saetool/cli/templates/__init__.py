"""Templates for files that saetool writes (kept as Python strings so every install has them)."""
