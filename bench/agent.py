"""Reader agent benchmark: `python bench/agent.py` prints one table (medians of repeated runs).

1. decode + pipeline: a recorded ThingMagic byte stream (200 tags, continuous-read 0x22
   records, fed in 4 KiB chunks) through `reader_agent.protocol` (FrameStream + parse) and the
   read pipeline, on one core. Bar: >= 100,000 reads/s.
2. sign + outbox + publish: observations signed (Ed25519, in the agent's signing process),
   committed to the SQLite outbox (synchronous=FULL, one transaction per batch of 200) and
   published at QoS 1 to a real Mosquitto on a free port until every PUBACK is in and its row
   deleted. Bar: >= 5,000 obs/s.
3. agent peak RSS: a real `python -m reader_agent run` process replaying 20,000 reads into the
   same broker; VmHWM read from /proc before it is stopped. Bar: <= 60 MB.

Two rows split stage 2 (sign only; outbox + publish of pre-signed rows) to show where the time
goes. Besides wall-clock rates the table gives rates per CPU-second of this process (all its
threads, not stage 2's signing child): on a machine shared with other work, that is what one
dedicated core would do. The load average is printed before and after, since wall-clock figures
depend on it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from reader_agent.config import AntennaZone, MqttSettings, PipelineSettings
from reader_agent.outbox import Outbox
from reader_agent.pipeline import PipelineObservation, ReadPipeline
from reader_agent.protocol import ReaderReply, get_codec, thingmagic
from reader_agent.publisher import Publisher, Topics
from reader_agent.signer import ObservationSigner
from reader_agent.signing_worker import SigningWorker

REPEATS = 3
READS = 200_000
OBSERVATIONS = 10_000
BATCH = 200
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
SETTINGS = PipelineSettings(antennas={1: AntennaZone("desk", -80), 2: AntennaZone("shelf", -80)},
                            min_reads=2, debounce_s=1.0, depart_after_s=5.0)


def recorded_stream() -> bytes:
    tags = [bytes.fromhex("3034") + n.to_bytes(10, "big") for n in range(200)]
    return b"".join(thingmagic.encode_tag_record(tags[i % 200], rssi_dbm=-40 - i % 30,
                                                 antenna=1 + i % 2) for i in range(READS))


class Timed:
    """Wall-clock and process CPU seconds of a `with` block."""

    def __enter__(self) -> Timed:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def decode_and_pipeline(stream: bytes) -> tuple[float, float]:
    codec = get_codec("thingmagic")
    frames, parse = codec.stream(), codec.parse
    pipeline = ReadPipeline(SETTINGS, "bench")
    out: list[PipelineObservation] = []
    feed = pipeline.feed
    n = 0
    with Timed() as timed:
        for offset in range(0, len(stream), 4096):
            for frame in frames.feed(stream[offset:offset + 4096]):
                item = parse(frame, n * 1e-4)
                if not isinstance(item, ReaderReply):
                    feed(item, out)
                    n += 1
            out.extend(pipeline.tick(n * 1e-4))
    assert pipeline.reads_in == READS, pipeline.reads_in
    return READS / timed.wall, READS / timed.cpu


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_broker(directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = directory / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                    "max_queued_messages 1000000\nmax_inflight_messages 1000\n")
    broker = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return broker, port
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("mosquitto did not start")


def observations() -> list[PipelineObservation]:
    now = time.monotonic()
    return [PipelineObservation("arrive", bytes.fromhex("3034") + n.to_bytes(10, "big"),
                                1, -40, "desk", now) for n in range(OBSERVATIONS)]


def sign_only() -> tuple[float, float]:
    items = observations()
    signer = ObservationSigner("bench-reader", Ed25519PrivateKey.generate())
    with Timed() as timed:
        for first in range(0, OBSERVATIONS, BATCH):
            signer.sign(items[first:first + BATCH], first)
    return OBSERVATIONS / timed.wall, OBSERVATIONS / timed.cpu


def sign_outbox_publish(directory: Path, port: int, run: int,
                        presigned: bool = False) -> tuple[float, float]:
    items = observations()
    signer = ObservationSigner("bench-reader", Ed25519PrivateKey.generate())
    signed = signer.sign(items, 0) if presigned else []
    signing = SigningWorker(signer)  # as the agent: forked before the outbox and paho's thread
    outbox = Outbox(directory / f"outbox-{run}.db", max_rows=1_000_000)
    publisher = Publisher(MqttSettings(port=port, client_id=f"bench-{run}"),
                          Topics.for_reader("bench", "site", f"r{run}"))
    publisher.start()
    while not publisher.connected:
        time.sleep(0.01)
    def deliver(published_up_to: int) -> tuple[int, int]:
        """One turn of the agent's loop: free the in-flight window, release what the broker
        has (no API here: as if it acknowledged at once), fill the window again."""
        acked = publisher.take_acknowledged()
        if not publisher.inflight:
            outbox.release_through(published_up_to)
        rows = outbox.pending(published_up_to, publisher.window_free)
        if rows:
            publisher.publish_rows(rows)
            published_up_to = rows[-1][0]
        return published_up_to, acked

    published_up_to, done = -1, 0
    with Timed() as timed:
        # A burst, as the agent's loop takes one: signed in slices by the signing process
        # (pre-signed: sliced here), each committed and published while the next is signed.
        slices = ([signed[first:first + BATCH] for first in range(0, OBSERVATIONS, BATCH)]
                  if presigned else signing.sign_slices(items, outbox.next_seq, BATCH))
        for rows in slices:
            outbox.append(rows)
            published_up_to, acked = deliver(published_up_to)
            done += acked
        while done < OBSERVATIONS:
            time.sleep(0.001)
            published_up_to, acked = deliver(published_up_to)
            done += acked
    outbox.release_through(published_up_to)
    assert outbox.depth == 0
    publisher.stop()
    outbox.close()
    signing.close()
    return OBSERVATIONS / timed.wall, OBSERVATIONS / timed.cpu


def agent_peak_rss_mb(directory: Path, port: int) -> float:
    capture = directory / "reads.txt"
    capture.write_text("\n".join(f"3034{n:020X} 1 -40" for n in range(20_000)) + "\n")
    config = directory / "agent.toml"
    config.write_text(f"""[reader]\nid = "bench"\nagency = "a"\nsite = "s"\nrole = "issue_desk"
protocol = "replay"\nport = "{capture}"\n[reader.settings]\nrate = 20000\n
[identity]\nkey_file = "reader.key"\n[outbox]\npath = "agent-outbox.db"\n
[mqtt]\nport = {port}\nhealth_interval_s = 1\n[pipeline]\nmin_reads = 1\n
[antennas.1]\nzone = "desk"\n""")
    agent = subprocess.Popen([sys.executable, "-m", "reader_agent", "run", "--config",
                              str(config)], stderr=subprocess.DEVNULL)
    peak = 0.0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = Path(f"/proc/{agent.pid}/status").read_text()
        peak = max(peak, int(status.split("VmHWM:")[1].split()[0]) / 1024)
        time.sleep(0.2)
    agent.send_signal(signal.SIGTERM)
    agent.wait(30)
    return peak


def main() -> None:
    stream = recorded_stream()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        broker, port = start_broker(directory)
        try:
            decode = [decode_and_pipeline(stream) for _ in range(REPEATS)]
            signing = [sign_only() for _ in range(REPEATS)]
            delivery = [sign_outbox_publish(directory, port, 100 + run, presigned=True)
                        for run in range(REPEATS)]
            publish = [sign_outbox_publish(directory, port, run) for run in range(REPEATS)]
            rss = []
            for run in range(REPEATS):
                os.makedirs(directory / f"rss{run}")
                rss.append(agent_peak_rss_mb(directory / f"rss{run}", port))
        finally:
            broker.terminate()
            broker.wait(10)
    load_after = os.getloadavg()

    def median(runs: list[tuple[float, float]], index: int) -> float:
        return statistics.median(run[index] for run in runs)

    rows = [
        ("decode + pipeline (thingmagic stream)", "reads/s", decode, 100_000),
        ("sign + outbox + publish (mosquitto)", "obs/s", publish, 5_000),
        ("  of which: sign only", "obs/s", signing, None),
        ("  of which: outbox + publish, pre-signed", "obs/s", delivery, None),
    ]
    print(f"{'stage':42} {'median':>9} {'per CPU-s':>10} {'unit':8} {'bar':>8} {'ratio':>6} ok")
    for stage, unit, runs, bar in rows:
        wall, cpu = median(runs, 0), median(runs, 1)
        verdict = (f"{bar:8,} {wall / bar:6.2f} {'yes' if wall >= bar else 'NO'}"
                   if bar else "")
        print(f"{stage:42} {wall:9,.0f} {cpu:10,.0f} {unit:8} {verdict}")
    peak = statistics.median(rss)
    print(f"{'agent peak RSS (replay, 20k reads)':42} {peak:9,.1f} {'':>10} {'MB':8} "
          f"{60:8,} {60 / peak:6.2f} {'yes' if peak <= 60 else 'NO'}")
    print(f"runs: {REPEATS}; cores: {os.cpu_count()}; load average before "
          f"{load_before[0]:.2f}, after {load_after[0]:.2f}; rss={[round(x, 1) for x in rss]}")


if __name__ == "__main__":
    main()
