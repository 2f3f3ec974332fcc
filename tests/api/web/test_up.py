"""`kitledger up` end to end: the scripted day's decisions reach the API, then Ctrl-C stops
every process it started and it exits 0. Collected after the page tests, which share its stack.
"""

from __future__ import annotations

import signal

from tests.api.web.web_support import RunningStack
from tests.fixtures.processes import descendants


def test_web_up_scripted_day_is_decided(day_done: RunningStack) -> None:
    radio = day_done.get("/v1/assets/radio-1/history")
    actions = [e["action"] for e in radio["events"]]
    assert actions == ["register", "check_out", "check_in"]
    bag = day_done.get("/v1/assets/evidence-bag-1")
    assert bag["status"] == "checked_out" and bag["holder_ref"] == "dc-carter"
    taser = day_done.get("/v1/assets/taser-1")
    assert taser["status"] == "in_store"
    # The printed log shows the refusal with its reason.
    assert "refused" in day_done.read_until("lacks qualification taser", 30)
    kinds = {a["kind"] for a in day_done.get("/v1/alerts")}
    assert "unauthorised_removal" in kinds
    # Agency B's key sees none of it.
    assert day_done.get("/v1/alerts", "fireservice") == []


def test_web_up_stops_cleanly_on_sigint(stack: RunningStack) -> None:
    children = descendants(stack.process.pid)
    assert len(children) >= 7  # broker, api (+ ingest), three simulators, three agents
    stack.process.send_signal(signal.SIGINT)
    assert stack.process.wait(60) == 0
    leftovers = {pid for pid in children if _alive(pid)}
    assert not leftovers, leftovers


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
