"""``python -m droptune``."""

from __future__ import annotations

import sys

from droptune.cli import main

if __name__ == "__main__":  # not when a spawned process imports it
    sys.exit(main())
