"""``python -m runners_cli``."""

import sys

from runners_cli.cli import main

sys.exit(main())
