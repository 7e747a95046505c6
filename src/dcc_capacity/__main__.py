"""``python -m dcc_capacity`` is the same as the ``dcc-capacity`` command."""

import sys

from dcc_capacity.cli import main

sys.exit(main())
