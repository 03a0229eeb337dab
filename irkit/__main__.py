"""``python -m irkit``."""

from __future__ import annotations

from irkit.cli import main

if __name__ == "__main__":
    main()
