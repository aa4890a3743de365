"""The history picture's model: marks per night, release days, base switches, the summary."""

from __future__ import annotations

from pipeline.core.pages import Urls, history_picture
from tests.core.history import History


def test_marks_events_switch_and_summary() -> None:
    h = History()
    h.compose(0, "pass")
    h.compose(1, "fail")
    h.compose(2, "no-image")
    h.compose(3, "manual")
    h.compose(4, "fail")
    h.compose(4, "pass")  # a respin the same day: the newest counts
    h.compose(6, "pass", version="23")  # night 5 has no compose; the base switches
    h.cut(h.at(14, 12))  # release day 2015-09-15
    now = h.at(15)
    picture = history_picture(h.state(now), Urls("atomic-host"), weeks=1)
    assert (picture.start, picture.end, picture.width) == ("2015-09-10", "2015-09-16", 56)
    picture = history_picture(h.state(now), Urls("atomic-host"), weeks=3)
    assert (picture.start, picture.end) == ("2015-08-27", "2015-09-16")
    nights = {m.day: (m.status, m.title) for m in picture.marks}
    assert len(picture.marks) == 21
    assert nights["2015-09-01"] == ("passed", "Fedora-Atomic-22-20150901.0: passed")
    assert nights["2015-09-02"] == ("failed", "Fedora-Atomic-22-20150902.0: failed")
    assert nights["2015-09-03"] == ("no-image", "Fedora-Atomic-22-20150903.0: no image")
    assert nights["2015-09-04"] == ("failed-manual", "Fedora-Atomic-22-20150904.0: failed by hand")
    assert nights["2015-09-05"] == ("passed", "Fedora-Atomic-22-20150905.1: passed")
    assert nights["2015-09-06"] == ("none", "2015-09-06: no compose")
    first = next(m for m in picture.marks if m.day == "2015-09-01")
    assert first.href == "atomic-host/composes/Fedora-Atomic-22-20150901.0.html"
    assert first.x == 5 * 8  # 2015-09-01 is the sixth night of the window
    (switch,) = picture.switches
    assert switch.title == "2015-09-07: base switched to Fedora 23"
    (release,) = picture.releases
    assert release.kind == "released" and release.title.startswith("Release 2015-09-15: released")
    assert picture.summary == (
        "Last 3 weeks, one mark per night: 3 passed, 1 failed, 1 no image, 1 failed by hand, "
        "15 without a compose. Release days: 1 released. "
        "2015-09-07: base switched to Fedora 23."
    )


def test_stale_and_withdrawn_release_days() -> None:
    h = History()
    h.compose(0, "pass")
    h.cut(h.at(14, 12))
    h.revoke("2015-09-15", h.at(15))
    h.cut(h.at(28, 12))  # nothing new passed: stale
    picture = history_picture(h.state(h.at(29)), Urls("atomic-host"))
    kinds = [e.kind for e in picture.releases]
    assert kinds == ["withdrawn", "stale"]
    assert "Release days: 1 stale, 1 withdrawn." in picture.summary
