"""The Bugzilla backend: python-bugzilla against a Bugzilla 5 REST emulator over real HTTP."""

from __future__ import annotations

import logging
import socket
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.adapters.bugzilla import BugzillaTracker, TagField, TimeoutSession
from pipeline.core.tracker import Bug, TrackerBackend
from pipeline.errors import ConfigError, TrackerError
from tests.bugzilla_emulator import (
    DEFAULT_API_KEY,
    BugzillaEmulator,
    bugzilla_server,  # noqa: F401  (the fixture)
)

TAG = "fortnight-atomic-host"
#: Client timeout: far above a loopback answer, far below the emulator's held answers.
CLIENT_TIMEOUT = 0.5
SEARCH = ("GET", "/rest/bug")
VERSION = ("GET", "/rest/version")

MakeTracker = Callable[..., BugzillaTracker]


@pytest.fixture
def make_tracker(bugzilla_server: BugzillaEmulator) -> Iterator[MakeTracker]:  # noqa: F811
    """A factory of trackers on the emulator (Fedora/fedora-atomic/28, no backoff)."""
    made: list[BugzillaTracker] = []

    def make(
        *,
        url: str | None = None,
        tag_field: TagField = "whiteboard",
        api_key: str | None = DEFAULT_API_KEY,
        attempts: int = 4,
        backoff: float = 0.0,
        product: str = "Fedora",
        version: str = "28",
        close_resolution: str = "CURRENTRELEASE",
        session: requests.Session | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> BugzillaTracker:
        tracker = BugzillaTracker(
            url or bugzilla_server.url,
            product,
            "fedora-atomic",
            version,
            tag_field=tag_field,
            api_key=api_key,
            attempts=attempts,
            backoff=backoff,
            timeout=CLIENT_TIMEOUT,
            close_resolution=close_resolution,
            session=session,
            sleep=sleep or (lambda _: None),
        )
        made.append(tracker)
        return tracker

    yield make
    for tracker in made:
        tracker.close_session()


@pytest.fixture
def emulator(bugzilla_server: BugzillaEmulator) -> BugzillaEmulator:  # noqa: F811
    """The emulator, with the tag keyword defined."""
    bugzilla_server.keywords.add(TAG)
    return bugzilla_server


def free_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def requests_to(emulator: BugzillaEmulator, method: str, path: str) -> int:
    return len(emulator.calls(method, path))


def full_text(exc: BaseException) -> str:
    """Everything a user could see of an error: message, hint, and the whole traceback."""
    return "\n".join(traceback.format_exception(exc))


# --- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("tag_field", ["whiteboard", "keywords"])
def test_create_find_comment_close_round_trip(
    emulator: BugzillaEmulator, make_tracker: MakeTracker, tag_field: TagField
) -> None:
    tracker = make_tracker(tag_field=tag_field)
    backend: TrackerBackend = tracker
    assert backend.name == "bugzilla"

    bug = backend.create(TAG, "Atomic Host: compose 20180425.0 failed", "Compose failed.\n[m:1]")
    assert bug == Bug(
        "1",
        f"{emulator.url}/show_bug.cgi?id=1",
        True,
        "Atomic Host: compose 20180425.0 failed",
        ("Compose failed.\n[m:1]",),
    )
    stored = emulator.bug(1)
    assert (stored["product"], stored["component"], stored["version"]) == (
        "Fedora",
        "fedora-atomic",
        "28",
    )
    assert stored["creator"] == "fortnight@example.com"
    if tag_field == "whiteboard":
        assert (stored["whiteboard"], stored["keywords"]) == (TAG, [])
    else:
        assert (stored["whiteboard"], stored["keywords"]) == ("", [TAG])

    assert backend.find_open(TAG) == [bug]

    backend.comment(bug.id, "Compose 20180426.0 failed too.\n[m:2]")
    got = backend.get(bug.id)
    assert got.comments == ("Compose failed.\n[m:1]", "Compose 20180426.0 failed too.\n[m:2]")
    assert got.is_open

    backend.close(bug.id, "Compose 20180427.0 passed; closing.\n[m:3]")
    closed = backend.get(bug.id)
    assert not closed.is_open
    assert closed.comments[-1] == "Compose 20180427.0 passed; closing.\n[m:3]"
    assert (emulator.bug(1)["status"], emulator.bug(1)["resolution"]) == (
        "CLOSED",
        "CURRENTRELEASE",
    )
    assert backend.find_open(TAG) == []


def test_requests_are_the_bugzilla_5_rest_calls(
    emulator: BugzillaEmulator, make_tracker: MakeTracker
) -> None:
    tracker = make_tracker()
    bug = tracker.create(TAG, "s", "d")
    tracker.find_open(TAG)
    tracker.comment(bug.id, "c")
    tracker.get(bug.id)
    tracker.close(bug.id, "x")
    assert [(r.method, r.path) for r in emulator.requests] == [
        ("GET", "/rest/version"),
        ("POST", "/rest/bug"),
        ("GET", "/rest/bug"),
        ("GET", "/rest/bug/1/comment"),
        ("PUT", "/rest/bug/1"),
        ("GET", "/rest/bug/1"),
        ("GET", "/rest/bug/1/comment"),
        ("PUT", "/rest/bug/1"),
    ]
    assert all(r.user == "fortnight@example.com" for r in emulator.requests)
    search = emulator.calls(*SEARCH)[0].params
    assert search["product"] == ["Fedora"] and search["component"] == ["fedora-atomic"]
    assert (search["f1"], search["o1"], search["v1"]) == (["bug_status"], ["notequals"], ["CLOSED"])
    assert (search["f2"], search["o2"], search["v2"]) == (
        ["status_whiteboard"],
        ["substring"],
        [TAG],
    )
    assert emulator.calls("PUT", "/rest/bug/1")[0].body == {
        "comment": {"comment": "c"},
        "ids": [1],
    }
    assert emulator.calls("PUT", "/rest/bug/1")[1].body == {
        "status": "CLOSED",
        "resolution": "CURRENTRELEASE",
        "comment": {"comment": "x"},
        "ids": [1],
    }


def test_find_open_keeps_open_tagged_bugs_of_the_component_oldest_first(
    emulator: BugzillaEmulator, make_tracker: MakeTracker
) -> None:
    newer = emulator.add_bug("newer", whiteboard=f"triaged {TAG}", description="d2")
    emulator.add_bug("closed", whiteboard=TAG, status="CLOSED", resolution="ERRATA")
    emulator.add_bug("other component", component="kernel", whiteboard=TAG)
    emulator.add_bug(
        "other product", product="Fedora Atomic Host", component="images", whiteboard=TAG
    )
    emulator.add_bug("longer tag", whiteboard=f"{TAG}-27")
    emulator.add_bug("untagged")
    older = emulator.add_bug("assigned", status="ASSIGNED", whiteboard=TAG, description="d1")
    emulator.add_bug("keyword only", keywords=(TAG,))
    # ids: newer=1 ... older=7; "oldest first" is by id
    found = make_tracker().find_open(TAG)
    assert [(b.id, b.summary, b.comments) for b in found] == [
        (str(newer), "newer", ("d2",)),
        (str(older), "assigned", ("d1",)),
    ]


def test_find_open_by_keyword(emulator: BugzillaEmulator, make_tracker: MakeTracker) -> None:
    emulator.keywords.add(f"{TAG}-27")
    emulator.add_bug("whiteboard only", whiteboard=TAG)
    emulator.add_bug("keyword", keywords=("Triaged", TAG), description="d", comments=("c1", "c2"))
    emulator.add_bug("other keyword", keywords=(f"{TAG}-27",))
    emulator.add_bug("closed", keywords=(TAG,), status="CLOSED", resolution="NOTABUG")
    found = make_tracker(tag_field="keywords").find_open(TAG)
    assert [(b.id, b.comments) for b in found] == [("2", ("d", "c1", "c2"))]


@settings(
    max_examples=25,
    deadline=None,
    database=None,  # examples are cheap to regenerate; leave no files behind
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(
        st.tuples(
            st.lists(
                st.sampled_from([TAG, TAG.upper(), f"{TAG}-2", f"x{TAG}", "Triaged", "[atomic]"]),
                max_size=3,
            ),
            st.sampled_from(["NEW", "ASSIGNED", "ON_QA", "CLOSED"]),
            st.sampled_from(["fedora-atomic", "kernel"]),
        ),
        max_size=5,
    )
)
def test_find_open_matches_the_tag_as_a_whole_whiteboard_word(
    emulator: BugzillaEmulator,
    make_tracker: MakeTracker,
    bugs: list[tuple[list[str], str, str]],
) -> None:
    emulator.reset()
    expected = []
    for words, status, component in bugs:
        bug_id = emulator.add_bug(
            "s",
            whiteboard=" ".join(words),
            status=status,
            resolution="ERRATA" if status == "CLOSED" else "",
            component=component,
        )
        tagged = any(w.casefold() == TAG for w in words)
        if tagged and status != "CLOSED" and component == "fedora-atomic":
            expected.append(str(bug_id))
    assert [b.id for b in make_tracker().find_open(TAG)] == expected


def test_bug_url_is_the_show_bug_page_whatever_the_configured_url(
    emulator: BugzillaEmulator, make_tracker: MakeTracker
) -> None:
    tracker = make_tracker(url=f"{emulator.url}/rest/")
    assert tracker.url == emulator.url
    bug = tracker.create(TAG, "s", "d")
    assert bug.url == f"{emulator.url}/show_bug.cgi?id={bug.id}"
    assert tracker.get(bug.id).url == bug.url


def test_close_resolution_is_a_setting(
    emulator: BugzillaEmulator, make_tracker: MakeTracker
) -> None:
    bug_id = emulator.add_bug(whiteboard=TAG)
    make_tracker(close_resolution="ERRATA").close(str(bug_id), "done")
    assert emulator.bug(bug_id)["resolution"] == "ERRATA"


def test_a_closed_bug_is_reported_closed(
    emulator: BugzillaEmulator, make_tracker: MakeTracker
) -> None:
    bug_id = emulator.add_bug(
        "s", whiteboard=TAG, status="CLOSED", resolution="WONTFIX", description="d"
    )
    assert make_tracker().get(str(bug_id)) == Bug(
        str(bug_id), f"{emulator.url}/show_bug.cgi?id={bug_id}", False, "s", ("d",)
    )


# --- Bugzilla refusals: raised at once ---------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "call", "message"),
    [
        (
            {"product": "Fedorah"},
            "create",
            "Sorry, either the product 'Fedorah' does not exist",
        ),
        ({"version": "99"}, "create", "There is no version named '99' in the 'Fedora' product"),
        ({"api_key": None}, "create", "You must log in before using this part of Bugzilla"),
        ({"tag_field": "keywords"}, "create", "There is no keyword named 'unknown-tag'"),
        ({"close_resolution": "FIXED"}, "close", "There is no resolution named 'FIXED'"),
        ({}, "get-missing", "Bug #99 does not exist"),
    ],
)
def test_bugzilla_refusals_raise_at_once_with_bugzilla_s_message(
    emulator: BugzillaEmulator,
    make_tracker: MakeTracker,
    setting: dict[str, Any],
    call: str,
    message: str,
) -> None:
    bug_id = str(emulator.add_bug(whiteboard=TAG))
    before = len(emulator.requests)
    tracker = make_tracker(**setting)
    tag = "unknown-tag" if setting.get("tag_field") else TAG
    actions: dict[str, Callable[[], object]] = {
        "create": lambda: tracker.create(tag, "s", "d"),
        "close": lambda: tracker.close(bug_id, "bye"),
        "get-missing": lambda: tracker.get("99"),
    }
    with pytest.raises(TrackerError, match=message) as caught:
        actions[call]()
    assert caught.value.message.startswith(f"bugzilla {emulator.url}: ")
    assert "\n" not in caught.value.diagnostics()
    assert len(emulator.requests) - before == 2  # the version probe and one try
    assert emulator.bug_ids() == [1]
    assert emulator.bug(1)["status"] == "NEW"


def test_a_wrong_api_key_is_named_but_never_shown(
    emulator: BugzillaEmulator, make_tracker: MakeTracker
) -> None:
    key = "WrongKey0123456789abcdefWrongKey01234567"
    with pytest.raises(TrackerError) as caught:
        make_tracker(api_key=key).find_open(TAG)
    error = caught.value
    assert error.message == (
        f"bugzilla {emulator.url}: search failed: The API key you specified is invalid. "
        "Please check that you typed it correctly. (code=306)"
    )
    assert "API key" in error.hint
    assert key not in error.diagnostics() and key not in full_text(error)
    assert requests_to(emulator, *SEARCH) == 1  # not retried


def test_the_api_key_never_appears_in_errors_of_failed_connections(
    make_tracker: MakeTracker,
) -> None:
    tracker = make_tracker(url=f"http://127.0.0.1:{free_port()}", attempts=2)
    with pytest.raises(TrackerError) as caught:
        tracker.create(TAG, "s", "d")
    assert DEFAULT_API_KEY not in full_text(caught.value)
    assert "connection refused" in caught.value.message


def test_the_api_key_never_appears_in_logs(
    emulator: BugzillaEmulator, make_tracker: MakeTracker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tracker = make_tracker()
    bug = tracker.create(TAG, "s", "d")
    emulator.inject("503", method="GET", path="/rest/bug")
    tracker.find_open(TAG)
    tracker.close(bug.id, "x")
    messages = [r.getMessage() for r in caplog.records]
    assert any("Bugzilla_api_key=***" in m for m in messages)  # urllib3 logged the URLs
    assert not [m for m in messages if DEFAULT_API_KEY in m]
    assert DEFAULT_API_KEY not in caplog.text


def test_a_multi_line_bugzilla_message_stays_on_one_line(
    emulator: BugzillaEmulator, make_tracker: MakeTracker
) -> None:
    tracker = make_tracker(version="28\n  (GA)")
    with pytest.raises(TrackerError) as caught:
        tracker.create(TAG, "s", "d")
    assert "\n" not in caught.value.diagnostics()
    assert "There is no version named '28 (GA)' in the 'Fedora' product" in caught.value.message


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="not an http"):
        BugzillaTracker("bugzilla.example.com", "P", "C", "1")
    with pytest.raises(ConfigError, match="tag_field"):
        BugzillaTracker("https://b.example.com", "P", "C", "1", tag_field="flags")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="attempts 0"):
        BugzillaTracker("https://b.example.com", "P", "C", "1", attempts=0)


# --- transient faults ----------------------------------------------------------------------


def test_a_503_on_a_search_is_retried(
    emulator: BugzillaEmulator, make_tracker: MakeTracker
) -> None:
    emulator.add_bug(whiteboard=TAG)
    emulator.inject("503", method="GET", path="/rest/bug")
    assert [b.id for b in make_tracker().find_open(TAG)] == ["1"]
    assert requests_to(emulator, *SEARCH) == 2
    assert [r.fault for r in emulator.calls(*SEARCH)] == ["503", None]


def test_a_persistent_503_fails_after_every_try_with_backoff(
    emulator: BugzillaEmulator, make_tracker: MakeTracker
) -> None:
    sleeps: list[float] = []
    emulator.inject("503", method="GET", path="/rest/bug", times=4)
    with pytest.raises(TrackerError) as caught:
        make_tracker(backoff=0.5, sleep=sleeps.append).find_open(TAG)
    assert (
        caught.value.message == f"bugzilla {emulator.url}: search failed after 4 tries (HTTP 503)"
    )
    assert caught.value.hint == "the next tracker.sync will finish the job"
    assert sleeps == [0.5, 1.0, 2.0]
    assert requests_to(emulator, *SEARCH) == 4


def test_a_refused_connection_is_retried_then_fails(make_tracker: MakeTracker) -> None:
    sleeps: list[float] = []
    url = f"http://127.0.0.1:{free_port()}"
    tracker = make_tracker(url=url, attempts=3, backoff=0.25, sleep=sleeps.append)
    with pytest.raises(TrackerError) as caught:
        tracker.find_open(TAG)
    assert caught.value.message.endswith("search failed after 3 tries (connection refused)")
    assert sleeps == [0.25, 0.5]


def test_bugzilla_coming_up_during_the_retries(make_tracker: MakeTracker) -> None:
    port = free_port()
    started: list[BugzillaEmulator] = []

    def bugzilla_comes_up(_: float) -> None:
        if not started:
            started.append(BugzillaEmulator(port=port).start())

    tracker = make_tracker(url=f"http://127.0.0.1:{port}", sleep=bugzilla_comes_up)
    try:
        assert tracker.find_open(TAG) == []
        assert [(r.method, r.path) for r in started[0].requests] == [VERSION, SEARCH]
    finally:
        for emulator in started:
            emulator.stop()


def test_a_write_is_retried_when_the_connection_was_refused(
    emulator: BugzillaEmulator, make_tracker: MakeTracker
) -> None:
    """No byte of the request reached Bugzilla, so filing again cannot file twice."""
    restarted: list[BugzillaEmulator] = []

    def bugzilla_comes_back(_: float) -> None:
        if not restarted:
            restarted.append(BugzillaEmulator(port=emulator.port).start())

    tracker = make_tracker(sleep=bugzilla_comes_back)
    tracker.find_open(TAG)  # connected (the version probe is done)
    emulator.stop()  # Bugzilla goes away: the POST's connection is refused
    try:
        bug = tracker.create(TAG, "s", "d")
        (back,) = restarted
        assert [(r.method, r.path) for r in back.requests] == [("POST", "/rest/bug")]
        assert bug.id == "1" and back.bug_ids() == [1]
        assert emulator.bug_ids() == []
    finally:
        for server in restarted:
            server.stop()


def test_a_write_is_retried_after_a_connect_timeout(
    emulator: BugzillaEmulator, make_tracker: MakeTracker
) -> None:
    class UnreachableOnce(TimeoutSession):
        failed = False

        def request(self, *args: Any, **kwargs: Any) -> requests.Response:
            if args[0] == "POST" and not self.failed:
                self.failed = True
                raise requests.ConnectTimeout("connect timed out (simulated)")
            return super().request(*args, **kwargs)

    with UnreachableOnce(CLIENT_TIMEOUT) as session:
        bug = make_tracker(session=session).create(TAG, "s", "d")
    assert emulator.bug_ids() == [int(bug.id)]
    assert requests_to(emulator, "POST", "/rest/bug") == 1


def test_a_read_timeout_on_a_search_is_retried(
    emulator: BugzillaEmulator, make_tracker: MakeTracker
) -> None:
    emulator.add_bug(whiteboard=TAG)
    emulator.inject("timeout", method="GET", path="/rest/bug")
    assert [b.id for b in make_tracker().find_open(TAG)] == ["1"]
    assert [r.fault for r in emulator.calls(*SEARCH)] == ["timeout", None]


@pytest.mark.parametrize("fault", ["503", "500", "reset", "timeout", "apply-then-503"])
def test_a_lost_answer_to_create_is_not_retried_and_files_at_most_one_bug(
    emulator: BugzillaEmulator, make_tracker: MakeTracker, fault: str
) -> None:
    tracker = make_tracker()
    emulator.inject(fault, method="POST", path="/rest/bug")
    with pytest.raises(TrackerError, match="create failed .*not retried") as caught:
        tracker.create(TAG, "Atomic Host: compose failed", "Compose failed.\n[m:1]")
    assert caught.value.hint == "the next tracker.sync will finish the job"
    assert requests_to(emulator, "POST", "/rest/bug") == 1
    made = fault in ("timeout", "apply-then-503")
    assert emulator.bug_ids() == ([1] if made else [])
    # What the tracker stage does next: look for the bug by its marker before filing again.
    found = tracker.find_open(TAG)
    assert [b.comments[0] for b in found] == (["Compose failed.\n[m:1]"] if made else [])


# --- a fault at every step of every operation ---------------------------------------------------

SEEDED = ("a failing compose", "Compose failed.\n[m:1]")
#: operation -> the requests it makes, in order (the version probe comes first).
STEPS: dict[str, list[tuple[str, str]]] = {
    "find_open": [VERSION, SEARCH, ("GET", "/rest/bug/1/comment")],
    "get": [VERSION, ("GET", "/rest/bug/1"), ("GET", "/rest/bug/1/comment")],
    "create": [VERSION, ("POST", "/rest/bug")],
    "comment": [VERSION, ("PUT", "/rest/bug/1")],
    "close": [VERSION, ("PUT", "/rest/bug/1")],
}
CASES = [
    pytest.param(op, step, fault, id=f"{op}-{step[0]} {step[1]}-{fault}")
    for op, steps in STEPS.items()
    for step in steps
    for fault in ("503", "reset", "timeout", "apply-then-503")
]


def run(tracker: BugzillaTracker, op: str) -> Any:
    if op == "find_open":
        return tracker.find_open(TAG)
    if op == "get":
        return tracker.get("1")
    if op == "create":
        return tracker.create(TAG, "another failure", "Compose failed.\n[m:2]")
    if op == "comment":
        return tracker.comment("1", "Compose failed again.\n[m:2]")
    return tracker.close("1", "Compose passed.\n[m:3]")


def change_made(emulator: BugzillaEmulator, op: str) -> bool:
    """Whether the write ``op`` took effect on the emulator."""
    if op == "create":
        return emulator.bug_ids() == [1, 2]
    if op == "comment":
        return bool(emulator.bug(1)["comments"] == [SEEDED[1], "Compose failed again.\n[m:2]"])
    return bool(emulator.bug(1)["status"] == "CLOSED")


@pytest.mark.parametrize(("op", "step", "fault"), CASES)
def test_a_fault_at_every_step(
    emulator: BugzillaEmulator,
    make_tracker: MakeTracker,
    op: str,
    step: tuple[str, str],
    fault: str,
) -> None:
    emulator.add_bug(SEEDED[0], whiteboard=TAG, description=SEEDED[1])
    emulator.inject(fault, method=step[0], path=step[1])
    tracker = make_tracker()
    url = f"{emulator.url}/show_bug.cgi?id=1"
    if step[0] == "GET" or step == VERSION:
        # A read, or the probe before a write: retried, and the operation completes once.
        result = run(tracker, op)
        assert requests_to(emulator, *step) == 2
        if op == "find_open":
            assert result == [Bug("1", url, True, SEEDED[0], (SEEDED[1],))]
        elif op == "get":
            assert result == Bug("1", url, True, SEEDED[0], (SEEDED[1],))
        else:
            assert change_made(emulator, op)
            assert requests_to(emulator, *STEPS[op][-1]) == 1
    else:
        # The write itself: its answer was lost, so it is not repeated.
        with pytest.raises(TrackerError, match=f"{op} failed .*not retried"):
            run(tracker, op)
        assert requests_to(emulator, *step) == 1
        assert change_made(emulator, op) == (fault in ("timeout", "apply-then-503"))
    assert emulator.pending_faults() == 0
