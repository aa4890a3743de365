"""What the site shows, computed from derived state: plain values the templates only print.

Pure functions over :class:`pipeline.core.state.State` (no I/O, no Pelican, no Jinja): the
download page with its banners, the dashboard rows, compose, bug and archive pages, the
stream document, the Atom feed entries and the "latest" pointers. Templates compose
these values; they never decide anything (STYLE.md: values computed in Python).

One module per page (``download``, ``dashboard``, ``compose``, ``bugs``, ``releases``,
``notes``, ``history``),
with ``links`` (the site's URLs) and ``formatting`` (small formatting helpers) beneath them;
this package names them all, so ``pages.download_page`` and friends are one import away.
"""

from __future__ import annotations

from pipeline.core.pages.bugs import (
    BugEvent,
    BugPage,
    bug_page,
    local_bugs,
)
from pipeline.core.pages.compose import (
    ComposePage,
    ResultRow,
    SuiteDetail,
    compose_page,
)
from pipeline.core.pages.dashboard import (
    DASHBOARD_PAGE,
    ComposeRow,
    DashboardPage,
    SuiteCell,
    compose_bugs,
    compose_notes,
    dashboard_pages,
    suite_cells,
)
from pipeline.core.pages.download import (
    LAUNCH_URL,
    TYPE_LABELS,
    VAGRANT_TYPES,
    AmiRow,
    ArchSection,
    Banner,
    CurrentRelease,
    Download,
    DownloadPage,
    arch_sections,
    banners,
    download_page,
    type_rank,
)
from pipeline.core.pages.formatting import (
    age,
    compose_date,
    http_url,
    iso,
    region_names,
    safe_relpath,
)
from pipeline.core.pages.history import (
    DayEvent,
    HistoryPicture,
    NightMark,
    history_picture,
)
from pipeline.core.pages.links import (
    Link,
    Urls,
    bug_href,
    bug_link,
    named_bug_link,
)
from pipeline.core.pages.notes import (
    PackageRow,
    ReleaseNotes,
    SizeRow,
    all_release_notes,
    changes_document,
    has_notes,
    previous_release,
    release_notes,
)
from pipeline.core.pages.releases import (
    ArchiveRow,
    FeedEntry,
    Latest,
    archive_rows,
    feed_entries,
    latest_pointers,
    release_of_compose,
    released_images,
    stream,
    withdrawal_of_compose,
)
from pipeline.core.units import human_size

__all__ = [
    "DASHBOARD_PAGE",
    "LAUNCH_URL",
    "TYPE_LABELS",
    "VAGRANT_TYPES",
    "AmiRow",
    "ArchSection",
    "ArchiveRow",
    "Banner",
    "BugEvent",
    "BugPage",
    "ComposePage",
    "ComposeRow",
    "CurrentRelease",
    "DashboardPage",
    "DayEvent",
    "Download",
    "DownloadPage",
    "FeedEntry",
    "HistoryPicture",
    "Latest",
    "Link",
    "NightMark",
    "PackageRow",
    "ReleaseNotes",
    "ResultRow",
    "SizeRow",
    "SuiteCell",
    "SuiteDetail",
    "Urls",
    "age",
    "all_release_notes",
    "arch_sections",
    "archive_rows",
    "banners",
    "bug_href",
    "bug_link",
    "bug_page",
    "changes_document",
    "compose_bugs",
    "compose_date",
    "compose_notes",
    "compose_page",
    "dashboard_pages",
    "download_page",
    "feed_entries",
    "has_notes",
    "history_picture",
    "http_url",
    "human_size",
    "iso",
    "latest_pointers",
    "local_bugs",
    "named_bug_link",
    "previous_release",
    "region_names",
    "release_notes",
    "release_of_compose",
    "released_images",
    "safe_relpath",
    "stream",
    "suite_cells",
    "type_rank",
    "withdrawal_of_compose",
]
