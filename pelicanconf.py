"""Pelican settings for local builds (``invoke site.build``); see the README, "The download site".

``publishconf.py`` imports these and overrides the production values.
"""

AUTHOR = "Fortnight"
# The site's name, its primary product and base URL come from the log's site.toml (see the
# README, "Site identity"); these are only the fallbacks.
SITENAME = ""
SITEURL = ""
RELATIVE_URLS = True  # the site works from any folder or bucket prefix

PATH = "content"
THEME = "theme"
OUTPUT_PATH = "output"
TIMEZONE = "UTC"
DEFAULT_LANG = "en"

# Our generator (pipeline/site/plugin.py) makes the pages from the manifest log.
PLUGINS = ["pipeline.site.plugin"]

# The product whose download page is the site's front door ("": site.toml's primary, else
# its default_product, else the log's first product).
FORTNIGHT_PRIMARY = ""
# Absolute site URL for feeds and the stream's manifest links ("" for relative links only).
FORTNIGHT_SITEURL = ""

# Only human-written pages come from content/: no blog, no Pelican index or archives.
ARTICLE_PATHS: list[str] = []
PAGE_PATHS = ["pages"]
STATIC_PATHS: list[str] = []
PAGE_URL = "{slug}.html"
PAGE_SAVE_AS = "{slug}.html"
DIRECT_TEMPLATES: list[str] = []
ARTICLE_SAVE_AS = ""
AUTHOR_SAVE_AS = ""
CATEGORY_SAVE_AS = ""
TAG_SAVE_AS = ""
INDEX_SAVE_AS = ""
DISPLAY_PAGES_ON_MENU = False
DISPLAY_CATEGORIES_ON_MENU = False

# Pelican's article feeds are off: the plugin writes a feed of releases per product.
FEED_ALL_ATOM = None
CATEGORY_FEED_ATOM = None
TRANSLATION_FEED_ATOM = None
AUTHOR_FEED_ATOM = None
AUTHOR_FEED_RSS = None

# Every string is escaped unless a template says otherwise (Pelican's HTML content does).
JINJA_ENVIRONMENT = {"trim_blocks": True, "lstrip_blocks": True, "autoescape": True}

# The output folder is updated in place (the plugin rewrites only what changed).
DELETE_OUTPUT_DIRECTORY = False

# Markdown for content/: no syntax highlighting (code blocks are shell sessions; guessing
# their language loads every Pygments lexer, about a second per build).
MARKDOWN = {
    "extension_configs": {
        "markdown.extensions.extra": {},
        "markdown.extensions.meta": {},
    },
    "output_format": "html5",
}
