"""The LLRP codec: the agent's fast tag-report parser against pyllrp's decoder as the oracle,
hostile reports and headers, hunting in captures, and the messages the driver builds."""

from __future__ import annotations

import contextlib
import struct

import bitstring
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyllrp import pyllrp  # type: ignore[import-untyped]
from reader_agent.protocol import EncodeError, MalformedFrame, llrp

EPC96 = bytes.fromhex("3034257BF7194E4000001A85")


def report_tlv(body: bytes) -> bytes:
    """An RO_ACCESS_REPORT whose TagReportData holds `body` (hand-made, for hostile cases)."""
    tag = struct.pack("!HH", llrp.P_TAG_REPORT_DATA, 4 + len(body)) + body
    return struct.pack("!HII", 1 << 10 | llrp.RO_ACCESS_REPORT, 10 + len(tag), 1) + tag


def oracle(frame: bytes) -> list[tuple[bytes, int, int, int]]:
    """pyllrp's own reading of a report, as (epc, antenna, rssi, first-seen)."""
    message = pyllrp.UnpackMessage(bitstring.ConstBitStream(bytes=frame))
    out = []
    for data in message.getTagData():
        epc = data["EPC"]
        epc = epc.to_bytes(12, "big") if isinstance(epc, int) else bytes(epc)
        out.append((epc, data["AntennaID"], data["PeakRSSI"], data["Timestamp"]))
    return out


tags = st.lists(st.tuples(
    st.binary(min_size=1, max_size=31).map(lambda b: b * 2),  # whole 16-bit words
    st.integers(1, 16), st.integers(-128, 127), st.integers(0, 2**64 - 1)), max_size=20)


@settings(max_examples=150, deadline=None)
@given(tags, st.integers(0, 2**32 - 1))
def test_fast_report_parser_agrees_with_pyllrp(reports: list[tuple[bytes, int, int, int]],
                                               message_id: int) -> None:
    frame = llrp.encode_report(message_id, reports)
    reads = llrp.parse_report(frame, 5.0)
    assert [(r.epc, r.antenna, r.rssi_dbm, r.reader_time_us) for r in reads] == oracle(frame)
    assert [r.epc for r in reads] == [epc for epc, *_ in reports]
    assert all(r.monotonic == 5.0 for r in reads)
    assert llrp.header(frame).message_id == message_id


def test_report_fields_the_content_selector_left_out_are_none() -> None:
    bare = bytes((0x80 | llrp.TV_EPC_96,)) + EPC96
    (read,) = llrp.parse_report(report_tlv(bare))
    assert (read.epc, read.antenna, read.rssi_dbm, read.reader_time_us) == (EPC96, 0, None, None)
    with_extras = bare + bytes((0x80 | 12,)) + b"\x30\x00" + bytes((0x80 | 8,)) + b"\x00\x07"
    (read,) = llrp.parse_report(report_tlv(with_extras))
    assert read.pc == 0x3000  # C1G2 PC reported; TagSeenCount skipped by its known length


@pytest.mark.parametrize(("body", "why"), [
    (b"", "without an EPC"),
    (bytes((0x80 | llrp.TV_EPC_96,)) + EPC96[:5], "overruns"),
    (bytes((0x80 | 99,)) + b"\x00" * 4, "unknown TV parameter 99"),
    (bytes((0x80 | llrp.TV_EPC_96,)) + EPC96 + b"\x00\xf1", "truncated parameter header"),
    (struct.pack("!HHH", llrp.P_EPC_DATA, 8, 96) + b"\x30\x34", "EPCData of 96 bits"),
    (struct.pack("!HHH", llrp.P_EPC_DATA, 6, 0), "outside 1..62"),
    (struct.pack("!HHH", llrp.P_EPC_DATA, 6 + 64, 512) + b"\x30" * 64, "outside 1..62"),
    (struct.pack("!HH", llrp.P_EPC_DATA, 2), "of length 2"),
    (struct.pack("!HH", 1023, 400) + b"\x00" * 8, "overruns its tag report"),
])
def test_hostile_tag_reports_are_refused_by_name(body: bytes, why: str) -> None:
    with pytest.raises(MalformedFrame, match=why):
        llrp.parse_report(report_tlv(body))


def test_hostile_report_tops_are_refused() -> None:
    good = llrp.encode_report(1, [(EPC96, 1, -50, 1)])
    overrun = good[:10] + struct.pack("!HH", llrp.P_TAG_REPORT_DATA, 400) + good[14:]
    with pytest.raises(MalformedFrame, match="overruns the report"):
        llrp.parse_report(overrun)
    with pytest.raises(MalformedFrame, match="TV parameter"):
        llrp.parse_report(good[:10] + b"\x81\x00\x01")
    with pytest.raises(MalformedFrame, match="truncated"):
        llrp.parse_report(good + b"\x00")
    # Custom and RFSurvey parameters at the top carry no reads and are stepped over.
    custom = struct.pack("!HHII", 1023, 12, 25882, 1)
    assert len(llrp.parse_report(good + custom)) == 1


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_reports_raise_malformed_frame_or_parse(data: st.DataObject) -> None:
    """Flipped, cut and extended reports never raise anything but MalformedFrame, in the fast
    parser and in pyllrp behind `decode_message` alike."""
    frame = bytearray(llrp.encode_report(3, data.draw(tags.filter(bool))))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(llrp.HEADER_LEN, len(frame) - 1))
        frame[i] = data.draw(st.integers(0, 255))
    frame = frame[: data.draw(st.integers(llrp.HEADER_LEN, len(frame)))]
    frame[2:6] = len(frame).to_bytes(4, "big")
    for parse in (llrp.parse_report, llrp.decode_message):
        with contextlib.suppress(MalformedFrame):
            parse(bytes(frame))


@pytest.mark.parametrize(("header", "why"), [
    (struct.pack("!HII", 2 << 10 | 61, 10, 1), "version 2"),
    (struct.pack("!HII", 1 << 13 | 1 << 10 | 61, 10, 1), "reserved bits"),
    (struct.pack("!HII", 1 << 10 | 999, 10, 1), "unknown message type 999"),
    (struct.pack("!HII", 1 << 10 | 61, 9, 1), "length 9"),
    (struct.pack("!HII", 1 << 10 | 61, llrp.MAX_MESSAGE_LEN + 1, 1), "length 4194305"),
])
def test_stream_refuses_a_header_that_breaks_the_rules(header: bytes, why: str) -> None:
    stream = llrp.MessageStream()
    with pytest.raises(MalformedFrame, match=why):
        stream.feed(llrp.keepalive(1) + header)
    with pytest.raises(MalformedFrame):
        llrp.decode_message(header)


def test_stream_reassembles_messages_split_anywhere() -> None:
    data = b"".join([llrp.connection_event(0, 7), llrp.keepalive(2),
                     llrp.encode_report(3, [(EPC96, 2, -40, 9)] * 3)])
    for step in (1, 3, 7, len(data)):
        stream = llrp.MessageStream()
        frames = [f for i in range(0, len(data), step) for f in stream.feed(data[i : i + step])]
        assert [llrp.header(f).type for f in frames] == [63, 62, 61]
        assert stream.pending == 0


def test_decode_hunts_past_stray_bytes_in_a_capture() -> None:
    keepalive = llrp.keepalive(9)
    data = b"\x04\xff\x00" + keepalive + b"\x04\x3d\x00\x00\x00"  # a cut-off header at the end
    result = llrp.decode(data)
    assert result.frame == keepalive and result.garbage == 3
    rest = llrp.decode(data, result.consumed)
    assert rest.need_more and rest.frame is None


def test_control_messages_round_trip_through_pyllrp() -> None:
    rospec = llrp.decode_message(llrp.add_rospec(5, 2, [3, 4], report_every=8)).message
    spec = rospec.getFirstParameterByClass(pyllrp.ROSpec_Parameter)
    ai = spec.getFirstParameterByClass(pyllrp.AISpec_Parameter)
    selector = spec.getFirstParameterByClass(pyllrp.TagReportContentSelector_Parameter)
    report = spec.getFirstParameterByClass(pyllrp.ROReportSpec_Parameter)
    assert (spec.ROSpecID, list(ai.AntennaIDs), report.N) == (2, [3, 4], 8)
    assert selector.EnableAntennaID and selector.EnablePeakRSSI
    assert selector.EnableFirstSeenTimestamp
    config = llrp.decode_message(llrp.set_reader_config(6, keepalive_ms=1500, power_index=41,
                                                        antennas=[1, 2])).message
    keepalive = config.getFirstParameterByClass(pyllrp.KeepaliveSpec_Parameter)
    powers = [p.TransmitPower for p in
              config.getAllParametersByClass(pyllrp.RFTransmitter_Parameter)]
    assert (keepalive.PeriodicTriggerValue, powers) == (1500, [41, 41])
    with pytest.raises(EncodeError):
        llrp.add_rospec(1, 0, [1])
    with pytest.raises(EncodeError):
        llrp.encode_report(1, [(b"", 1, -50, 0)])


def test_power_is_the_nearest_table_entry_not_above_the_setting() -> None:
    table = {1: 1000, 2: 1500, 3: 2000, 4: 3000}
    assert llrp.power_index(table, 20.0) == 3
    assert llrp.power_index(table, 29.9) == 3
    assert llrp.power_index(table, 5.0) == 1  # below the table: its lowest entry
    assert llrp.power_index({}, 20.0) is None


def test_responses_carry_status_and_events_are_described() -> None:
    failed = llrp.decode_message(llrp.status_response(llrp.ADD_ROSPEC, 4, 101, "bad field"))
    assert failed.type == llrp.ADD_ROSPEC_RESPONSE
    assert llrp.status_of(failed.message) == (101, "bad field")
    event = llrp.describe(llrp.decode_message(llrp.antenna_event(8, 1234, 3, False)))
    assert event["antenna_event"] == [llrp.ANTENNA_DISCONNECTED, 3]
    refused = llrp.describe(llrp.decode_message(
        llrp.connection_event(1, 5, llrp.CONNECTION_CLIENT_EXISTS)))
    assert refused["connection_attempt"] == llrp.CONNECTION_CLIENT_EXISTS
    caps = llrp.parse_capabilities(llrp.decode_message(llrp.capabilities_response(
        2, manufacturer=25882, model=7, firmware="8.4", antennas=4,
        power_table={1: 1000, 2: 1100})).message)
    assert (caps.max_antennas, caps.power_table) == (4, {1: 1000, 2: 1100})


def test_tv_lengths_match_pyllrp_where_it_knows_them() -> None:
    known = {code: pu.Length for code, pu in pyllrp._ParameterPackUnpackLookup.items()
             if isinstance(code, int) and pu.Encoding == "TV"}
    assert known and all(llrp.TV_LENGTHS[code] == size for code, size in known.items())
