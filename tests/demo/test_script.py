"""The demo's story (``demo_script`` in pipeline/demo/simulate.py): every ``--weeks`` from 1 to
52 and every ``--seed`` plans a story that fits in its days (issue 17: ``--weeks 5`` raised
IndexError), without running the pipeline."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from pipeline.demo.simulate import demo_script

END = date(2018, 9, 30)


@given(weeks=st.integers(min_value=1, max_value=52), seed=st.integers())
def test_every_weeks_and_seed_plans_a_story_within_its_days(weeks: int, seed: int) -> None:
    script = demo_script(weeks, seed, END)
    days = weeks * 7
    assert script.days == len(script.nights) == days
    assert script.day(days - 1) == END and script.anchor == script.day(6)
    release = script.release_days()
    assert release == list(range(6, days, 14))
    assert all(d < days for d in release)
    assert "no-image" in script.nights[:5]
    if days > 12:
        assert "advisory" in script.nights[7:12]
    for event in (script.operator_fail, script.withdraw, script.base_switch):
        assert event is None or 0 <= event < days
    if len(release) >= 3:  # one whole cycle fails, then a good night is released late
        assert set(script.nights[release[1] + 1 : release[2] + 1]) == {"blocking"}
        if release[2] + 1 < days:
            assert script.nights[release[2] + 1] == "good"
    if len(release) >= 4:
        assert script.operator_fail == release[3] - 1
        assert script.nights[release[3] - 2 : release[3]] == ("good", "good")
        assert script.withdraw == (release[3] + 1 if release[3] + 1 < days else None)
    else:
        assert script.operator_fail is script.withdraw is script.base_switch is None


@given(weeks=st.integers(min_value=1, max_value=52), seed=st.integers())
def test_the_same_seed_plans_the_same_story(weeks: int, seed: int) -> None:
    assert demo_script(weeks, seed, END) == demo_script(weeks, seed, END)


def test_five_weeks_end_with_the_late_release_cut_off() -> None:
    """The case of the issue: the failing cycle's release day is the story's last day."""
    script = demo_script(5, 1, END)
    assert script.release_days() == [6, 20, 34]
    assert script.nights[21:] == ("blocking",) * 14
    assert script.start == END - timedelta(days=34)
