"""Packing several JSON objects into one message: byte-exact round trips, hostile arrays whole."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.core.packing import chunks, pack, unpack

_objects = st.dictionaries(
    st.text(max_size=8),
    st.one_of(st.integers(), st.text(max_size=40), st.none(), st.lists(st.booleans(), max_size=3)),
    max_size=4,
).map(lambda value: json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


@given(st.lists(_objects, min_size=1, max_size=120), st.integers(1, 60), st.integers(2, 3000))
def test_chunked_packing_round_trips_every_object_byte_for_byte(
    objects: list[bytes], max_items: int, max_bytes: int
) -> None:
    spans = list(chunks([len(o) for o in objects], max_items, max_bytes))
    assert [i for span in spans for i in span] == list(range(len(objects)))
    unpacked: list[bytes] = []
    for span in spans:
        payload = pack(objects[span.start:span.stop])
        assert len(span) <= max_items
        assert len(span) == 1 or len(payload) <= max_bytes  # only a lone object may be larger
        unpacked += unpack(payload, max_items)
    assert unpacked == objects


def test_a_lone_object_is_sent_bare_and_read_as_itself() -> None:
    envelope = b'{"payload":{"seq":1},"sig":"x"}'
    assert pack([envelope]) == envelope
    assert unpack(envelope, 50) == [envelope]


@pytest.mark.parametrize("payload", [
    b"[", b"[]", b"[1,2]", b'[{"a":1},2]', b'[{"a":1}]x', b'[{"a":1},]', b'[{"a":1} ,{"b":2}]',
    b'[ {"a":1}]', b'[{"a":1}', b'[{"a":1}][{"b":2}]', b'[{"a":' + b"[" * 100_000 + b"]",
    b'[{"a":"\xff"}]', b'[[{"a":1}]]', b'[{"a":1},{"a":1},{"a":1},{"a":1}]',
    b'[{"a":"' + b"x" * 5000 + b'"}]',  # an object longer than MAX_OBJECT_CHARS
])
def test_an_array_that_is_not_a_compact_packing_comes_back_whole(payload: bytes) -> None:
    assert unpack(payload, max_items=3) == [payload]


def test_chunks_start_a_new_message_at_either_limit() -> None:
    assert list(chunks([10] * 7, 3, 10_000)) == [range(0, 3), range(3, 6), range(6, 7)]
    # Packed, three 10-byte objects take 1 + 3 * 11 = 34 bytes.
    assert list(chunks([10] * 4, 100, 34)) == [range(0, 3), range(3, 4)]
    assert list(chunks([10, 500, 10], 100, 100)) == [range(0, 1), range(1, 2), range(2, 3)]
    assert list(chunks([], 5, 100)) == []


_DEEP = """
import sys, threading
sys.setrecursionlimit(100_000)  # what importing py_ecc (the embedded chain) does
from ledger.core.packing import unpack
from reader_agent.decisions import DecisionError, parse_decisions
survived = []
def hostile():  # in a thread, as paho's network thread: 99,000 levels overflow its stack
    for payload in (b"[" * 99_000, b'[{"a":' + b"[" * 99_000, b'[{"a":1},' + b'{"b":' * 20_000,
                    b'[{"a":' + b"[" * 65_000):  # under the agent's 64 KiB decisions limit
        assert unpack(payload, 64) == [payload]
        try:
            parse_decisions(payload)
        except DecisionError:
            survived.append(payload)
thread = threading.Thread(target=hostile)
thread.start()
thread.join()
print("survived" if len(survived) == 4 else "accepted")
"""


def test_a_deeply_nested_array_is_refused_not_a_crash_under_a_raised_recursion_limit() -> None:
    """json's C parser recurses once per level; with the limit raised (py_ecc does, on import)
    an unbounded parse of 99,000 "[" overflows a thread's C stack and kills the process. In a
    child process, so a crash fails this test rather than the whole run."""
    done = subprocess.run([sys.executable, "-c", _DEEP], capture_output=True, text=True,
                          timeout=60, check=False)
    assert (done.returncode, done.stdout.strip()) == (0, "survived"), done.stderr[-2000:]
