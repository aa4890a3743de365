"""``python -m pipeline.checks NAME``: run one built-in image check."""

import sys

from pipeline.checks.command import main

sys.exit(main())
