"""Anchoring benchmark: checkpoint batching versus one transaction per custody event, on anvil.

    .venv/bin/python bench/anchoring.py [--events 10000] [--block-time 1.0] [--runs 3]

One anvil (from contracts/node_modules, free gas like a Besu network, raised block gas limit)
serves every mode in one run:

* batched: a producer appends events to a Merkle log in ingest-sized chunks while the
  `Anchorer` (interval `--interval`, at most one anchor in flight) anchors signed checkpoints;
* per-event, pipelined: one `anchor` transaction per event, all signed and sent without waiting
  (the best case for that design), then every receipt awaited;
* per-event, send-and-wait: the usual RFID-plus-blockchain loop (send, await the receipt, next),
  timed on a small sample because it costs a block per event.

"events/s" is events divided by the time from the first event to the last one anchored with one
confirmation; lag is, per event, the time from its arrival until the block anchoring it was seen.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import Web3

from ledger.chain.anchorer import Anchorer, AnchorPolicy
from ledger.chain.client import CustodyAnchorClient, FeePolicy
from ledger.chain.errors import ChainUnavailable
from ledger.chain.pending import SqlitePendingAnchorStore
from ledger.chain.provider import connect
from ledger.core.checkpoint import chain_log_id
from ledger.core.envelope import key_id
from ledger.core.merkle import leaf_hash
from ledger.merkle_log import MerkleLog
from ledger.merkle_nodes import MemoryNodeStore

REPO = Path(__file__).resolve().parents[1]
CHUNK = 100  # events per ingest batch appended to the log
SEND_BATCH = 200  # per-event transactions per JSON-RPC batch
FREE_GAS = FeePolicy(gas_price=0)


@dataclass
class Result:
    mode: str
    events: int
    txs: int
    seconds: float
    gas: list[int]
    lags: list[float]


class LockedLog:
    """The Merkle log shared by the producer and the anchorer thread."""

    def __init__(self) -> None:
        self._log = MerkleLog(MemoryNodeStore())
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        with self._lock:
            return self._log.size

    def append_many(self, entries: Sequence[bytes]) -> None:
        with self._lock:
            self._log.append_many(entries)

    def root(self, size: int | None = None) -> bytes:
        with self._lock:
            return self._log.root(size)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        with self._lock:
            return self._log.consistency_proof(size1, size2)


class BlockClock:
    """Records the wall time at which each block number was first seen."""

    def __init__(self, url: str) -> None:
        self.w3 = connect(url)
        self.seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            number = int(self.w3.eth.block_number)
            self.seen.setdefault(number, time.time())
            self._stop.wait(0.005)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def start_anvil(block_time: float) -> tuple[subprocess.Popen[bytes], str]:
    import socket

    binary = next((REPO / "contracts/node_modules/@foundry-rs").glob("anvil-*/bin/anvil"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (4 * 1024**3, 4 * 1024**3))

    process = subprocess.Popen(
        [str(binary), "--port", str(port), "--silent", "--block-time", str(block_time),
         "--gas-limit", "2000000000", "--base-fee", "0", "--gas-price", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=cap,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            connect(url)
        except ChainUnavailable:
            time.sleep(0.05)
            continue
        return process, url
    raise RuntimeError("anvil did not start")


def deploy(w3: Web3) -> tuple[CustodyAnchorClient, CustodyAnchorClient, bytes]:
    admin = CustodyAnchorClient.deploy(w3, Account.create(), fees=FREE_GAS)
    anchorer = CustodyAnchorClient(w3, admin.address, Account.create(), FREE_GAS)
    agency = b"\x01" * 32
    admin.grant_anchorer(agency, anchorer.account.address)
    return admin, anchorer, agency


def run_batched(url: str, n: int, interval: float, clock: BlockClock, db: Path) -> Result:
    w3 = connect(url)
    admin, client, agency = deploy(w3)
    key = Ed25519PrivateKey.generate()
    admin.register_log(chain_log_id(key_id(key.public_key())), agency)
    log = LockedLog()
    store = SqlitePendingAnchorStore(db)
    anchorer = Anchorer(log, key, client, store, AnchorPolicy(interval_s=interval,
                                                              max_new_leaves=n + 1))
    arrivals: list[float] = []
    stop = threading.Event()
    worker = threading.Thread(target=anchorer.run, args=(stop, 0.01), daemon=True)
    start = time.time()
    worker.start()
    for first in range(0, n, CHUNK):
        batch = [b"custody-event-%d" % i for i in range(first, min(first + CHUNK, n))]
        log.append_many(batch)
        arrivals.extend([time.time()] * len(batch))
    while (final := store.latest_final(anchorer.chain_log_id)) is None or final.tree_size < n:
        time.sleep(0.005)
    seconds = time.time() - start
    stop.set()
    worker.join()
    events = client.anchored_events(anchorer.chain_log_id, 0)
    lags: list[float] = []
    covered = 0
    for event in events:
        seen = clock.seen.get(event.block_number, time.time())
        lags.extend(seen - arrivals[i] for i in range(covered, event.tree_size))
        covered = event.tree_size
    gas = [int(w3.eth.get_transaction_receipt(HexBytes(e.tx_hash))["gasUsed"]) for e in events]
    return Result("batched checkpoints", n, len(events), seconds, gas, lags)


def run_per_event(url: str, n: int, clock: BlockClock) -> Result:
    w3 = connect(url)
    admin, client, agency = deploy(w3)
    log_id = b"\x02" * 32
    admin.register_log(log_id, agency)
    nonce = client.pending_nonce()
    chain_id = int(w3.eth.chain_id)
    selector = keccak(text="anchor(bytes32,uint64,bytes32)")[:4]
    start = time.time()
    sent: list[tuple[bytes, float]] = []
    # The strongest form of the per-event design: ABI-encoded by hand, signed locally, sent in
    # JSON-RPC batches, never waiting between transactions.
    for first in range(0, n, SEND_BATCH):
        raws = []
        for i in range(first, min(first + SEND_BATCH, n)):
            args = abi_encode(["bytes32", "uint64", "bytes32"],
                              [log_id, i + 1, leaf_hash(b"custody-event-%d" % i)])
            signed = client.account.sign_transaction({
                "to": client.contract.address, "data": selector + args, "nonce": nonce + i,
                "gas": 150_000, "gasPrice": 0, "chainId": chain_id})
            raws.append(signed.raw_transaction)
            sent.append((bytes(signed.hash), time.time()))
        answers = w3.provider.make_batch_request(  # type: ignore[attr-defined]
            [("eth_sendRawTransaction", ["0x" + bytes(raw).hex()]) for raw in raws]
        )
        refused = [a for a in answers if "error" in a]
        assert not refused, refused[:1]
    client.wait_for_receipt(sent[-1][0], timeout_s=600)
    seconds = time.time() - start
    sample = sent[:: max(1, n // 200)]
    receipts = [w3.eth.get_transaction_receipt(HexBytes(h)) for h, _ in sample]
    lags = [clock.seen.get(int(r["blockNumber"]), time.time()) - t
            for r, (_, t) in zip(receipts, sample, strict=True)]
    return Result("per event, pipelined", n, n, seconds, [int(r["gasUsed"]) for r in receipts],
                  lags)


def run_send_and_wait(url: str, sample: int, db: Path) -> Result:
    w3 = connect(url)
    admin, client, agency = deploy(w3)
    log_id = b"\x03" * 32
    admin.register_log(log_id, agency)
    store = SqlitePendingAnchorStore(db)
    start = time.time()
    gas, lags = [], []
    for i in range(sample):
        t = time.time()
        sent = client.anchor(store, log_id, i + 1, leaf_hash(b"e%d" % i), b"{}", t)
        gas.append(client.wait_for_receipt(sent.tx_hash, timeout_s=60).gas_used)
        lags.append(time.time() - t)
    return Result("per event, send-and-wait", sample, sample, time.time() - start, gas, lags)


def median_of(results: list[Result], metric: Callable[[Result], float]) -> float:
    return statistics.median(metric(r) for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--block-time", type=float, default=1.0)
    parser.add_argument("--interval", type=float, default=1.0, help="anchoring interval (s)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--wait-sample", type=int, default=10)
    args = parser.parse_args()
    process, url = start_anvil(args.block_time)
    clock = BlockClock(url)
    tmp = Path(tempfile.mkdtemp(prefix="kitledger-bench-"))
    try:
        modes: dict[str, list[Result]] = {}
        for run in range(args.runs):
            for result in (
                run_batched(url, args.events, args.interval, clock, tmp / f"b{run}.sqlite"),
                run_per_event(url, args.events, clock),
            ):
                modes.setdefault(result.mode, []).append(result)
        wait = run_send_and_wait(url, args.wait_sample, tmp / "w.sqlite")
        modes[wait.mode] = [wait]
    finally:
        clock.stop()
        process.terminate()
        process.wait()
    report(modes, args)


def report(modes: dict[str, list[Result]], args: argparse.Namespace) -> None:
    print(f"\nanchoring on anvil: {args.events} events, block time {args.block_time}s, "
          f"interval {args.interval}s, medians of {args.runs} runs (send-and-wait: one sample "
          f"of {args.wait_sample})\n")
    head = ("mode", "events", "txs", "events/tx", "seconds", "events/s", "gas/tx", "gas/event",
            "lag p50 s", "lag max s")
    rows = []
    rates: dict[str, float] = {}
    for mode, results in modes.items():
        rate = median_of(results, lambda r: r.events / r.seconds)
        rates[mode] = rate
        txs = median_of(results, lambda r: r.txs)
        gas = median_of(results, lambda r: statistics.median(r.gas))
        events = results[0].events
        rows.append((mode, f"{events}", f"{txs:.0f}", f"{events / txs:.0f}",
                     f"{median_of(results, lambda r: r.seconds):.2f}", f"{rate:,.0f}",
                     f"{gas:,.0f}", f"{gas * txs / events:,.1f}",
                     f"{median_of(results, lambda r: statistics.median(r.lags)):.2f}",
                     f"{median_of(results, lambda r: max(r.lags)):.2f}"))
    widths = [max(len(str(c)) for c in col) for col in zip(head, *rows, strict=True)]
    for line in (head, *rows):
        print("  ".join(str(c).rjust(w) for c, w in zip(line, widths, strict=True)))
    batched = modes["batched checkpoints"]
    tx_ratio = args.events / median_of(batched, lambda r: r.txs)
    lag_max = median_of(batched, lambda r: max(r.lags))
    lag_bar = args.interval + 2 * args.block_time
    print()
    print(f"transactions, per-event / batched:        {tx_ratio:,.0f}x  (bar >= 1,000x)")
    for mode in ("per event, pipelined", "per event, send-and-wait"):
        ratio = rates["batched checkpoints"] / rates[mode]
        print(f"events/s, batched / {mode + ':':<26}{ratio:,.0f}x  (bar >= 100x)")
    print(f"batched lag max {lag_max:.2f}s vs interval + 2 blocks = {lag_bar:.2f}s: "
          f"{'met' if lag_max <= lag_bar else 'NOT met'}")


if __name__ == "__main__":
    main()
