"""``python -m spmm.cli ARGS``: the ``spmm`` command."""

import sys

from spmm.cli import main

sys.exit(main())
