"""``python -m ssmzoo``: the command line."""

import sys

from ssmzoo.cli import main

sys.exit(main())
