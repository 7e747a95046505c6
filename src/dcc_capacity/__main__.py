"""``python -m dcc_capacity`` is the same as the ``dcc-capacity`` command."""

import sys

from .cli import main

sys.exit(main())
