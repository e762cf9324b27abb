"""``python -m droptune``."""

from __future__ import annotations

import sys

from droptune.cli import main

sys.exit(main())
