"""``python -m chrysalis.gen.cli``: the same as the ``chrysalis`` command."""

import sys

from . import main

sys.exit(main())
