"""``python -m pipeline.checks NAME``: run one built-in image check."""

import sys

from pipeline.checks import main

sys.exit(main())
