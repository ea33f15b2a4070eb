"""``python -m neuropoyo``: the command line, as torchrun launches it (``torchrun ... -m neuropoyo train``)."""

import sys

from neuropoyo.cli import main

sys.exit(main())
