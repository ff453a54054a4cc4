"""``python -m cldiag`` is the ``cldiag`` command."""

from __future__ import annotations

import sys

from cldiag.cli import main

sys.exit(main())
