"""``python -m saetool`` (also what ``torchrun ... -m saetool`` runs)."""

from saetool.cli.main import main

if __name__ == "__main__":
    main()
