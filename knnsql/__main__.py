"""``python -m knnsql ...``: the ``knnsql`` command (knnsql/_cli.py)."""

import sys

from ._cli import main

sys.exit(main())
