"""``python -m neuropoyo.cli``: the same command as ``python -m neuropoyo``."""

import sys

from neuropoyo.cli import main

sys.exit(main())
