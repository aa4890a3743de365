"""Production settings: ``invoke site.build --production``. Only what differs from pelicanconf."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pelicanconf import *  # noqa: F403

# The public address of the site; set FORTNIGHT_SITE_URL where the site is published.
SITEURL = os.environ.get("FORTNIGHT_SITE_URL", "https://fortnight.example.org")
RELATIVE_URLS = False
FORTNIGHT_SITEURL = SITEURL
