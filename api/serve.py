"""Running the service: the HTTP workers, their ingest and anchoring processes, and shutdown.

`kitledger serve` starts `--ingest-workers` processes, each an `IngestWorker` with its own
client id in the same MQTT shared-subscription group (so the broker splits the load); one
anchoring process (`api.anchoring`: signs and anchors every agency's log; with the default
`anchor_chain_url = "embedded://"` it owns the in-process chain, so there must be exactly one;
`none` only signs checkpoints); when witnesses are configured, one cosigning process
(`api.cosigning`: asks them to cosign each new checkpoint); then runs uvicorn with
`--workers` HTTP processes built by `build_app` (a factory, so nothing is built at import).
Webhook deliveries (`api.webhooks`) run in a thread of `serve` itself.

Several nodes (`serve` processes, on one machine or many) may share the database and the
broker. Ingest splits among them; the anchorer, the cosigner, the webhook dispatcher and the
ingest workers' scans each run in one process of all of them, the holder of its role
(`api.roles`): every node starts them, and they wait until elected. On SQLite (one node)
every role is held at once. A node's processes share its id (`api.node.node_id`), which
names their database sessions, so `/readyz` and the `kitledger_role_held` gauge can say which
roles this node holds.

A child that ends while `serve` runs (a crash, the OOM killer) is not restarted: `serve` logs
it in one line and, for an ingest worker, records it so `/readyz` answers 503 at once
(`ChildWatch`, `api.broker_status`); the operator (or systemd, restarting the unit) decides.

Shutdown, whatever the cause: SIGTERM or SIGINT to `serve` stops uvicorn, then every child is
sent SIGTERM, waited for, and killed if it lingers. If `serve` itself dies without cleaning up
(SIGKILL, a crash), each child still leaves: the kernel sends it SIGTERM when its parent dies
(`PR_SET_PDEATHSIG`, Linux), and it also polls `getppid()` (other systems, and the window
before the death signal was armed). Unacknowledged MQTT messages are redelivered by the broker
to whichever worker runs next; the anchorer is crash-safe (every anchor is recorded before it
is sent, every database write is one transaction).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.process import BaseProcess
from typing import Any, Final

from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from api import json_logging
from api.app import create_app
from api.broker_status import (
    BrokerReporter,
    BrokerState,
    expect_workers,
    forget_node,
    write_status,
)
from api.config import load_settings
from api.db import make_engine
from api.ingest.health import HealthListener
from api.ingest.pipeline import IngestPipeline
from api.ingest.worker import IngestWorker
from api.metrics import (
    watch_anchoring,
    watch_reader_health,
    watch_readiness,
    watch_roles,
    watch_witnesses,
)
from api.node import ENV as NODE_ENV
from api.node import node_id
from api.outage import DATABASE, is_unavailable
from api.processes import die_with_parent, tune_collector
from api.roles import Election, Role
from api.webhooks import WebhookDispatcher

log = logging.getLogger("kitledger.serve")

MAX_WORKERS: Final = 64
"""HTTP or ingest processes per `serve`: far beyond a 2-core store server, and a typo such as
`--workers 1000` is refused instead of forking a thousand processes."""


PARENT_POLL_S: Final = 0.5
"""How often a child process checks that `serve` is still running."""

CHILD_STOP_S: Final = 20.0
"""How long `serve` waits for its children after SIGTERM before killing them: an ingest
worker finishes its batch in hand (one transaction) well within it."""

ANCHOR_HAND_OVER_S: Final = 12.0
"""How long a stopping anchorer waits for its transactions in flight (within CHILD_STOP_S)."""

WARM_UP_S: Final = 30.0
"""How long an ingest worker waits for its verifier children and a database connection
before it subscribes anyway."""


INGEST_PREFIX: Final = "ingest-"
"""An ingest worker's process is named this and its index."""


class ServeStopped(Exception):
    """SIGTERM reached `serve`: unwinds through uvicorn so the children are stopped."""


@dataclass(frozen=True, slots=True)
class ServeOptions:
    host: str
    port: int
    workers: int
    ingest_workers: int
    overrides: dict[str, Any]


def build_app() -> FastAPI:
    """The uvicorn factory: settings from the environment (KITLEDGER_*)."""
    parent = multiprocessing.parent_process()
    if parent is not None and parent.pid is not None:
        die_with_parent(parent.pid)  # an HTTP worker of `--workers N`: leave with uvicorn
    json_logging.configure()
    app = create_app()
    watch_anchoring(app.state.engine)
    watch_witnesses(app.state.engine, [w.vkey for w in app.state.settings.witnesses])
    watch_roles(app.state.engine, node_id(app.state.settings))
    watch_readiness(app.state.engine, app.state.settings, node_id(app.state.settings))
    watch_reader_health(app.state.engine, app.state.settings.reader_health_timeout_s,
                        per_reader=app.state.settings.metrics_per_reader,
                        temperature_limit_c=app.state.settings.reader_temperature_alert_c)
    return app


def run_ingest(index: int, overrides: dict[str, Any], parent: int) -> None:
    """One ingest worker process, until SIGTERM, SIGINT or the death of `serve`."""
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    die_with_parent(parent)
    json_logging.configure()
    settings = load_settings(**overrides)
    engine = make_engine(settings)
    json_logging.set_node(node_id(settings))
    worker = IngestWorker(settings, IngestPipeline(engine, settings),
                          client_id=f"{settings.mqtt_client_id}-{node_id(settings)}-{index}")
    # Ready before subscribing: what the broker gives a node that has just started (a rolling
    # restart) must not wait for its verifier children to import.
    worker.start(warm_s=WARM_UP_S)
    # One health listener a node, beside its first ingest worker (api.ingest.health).
    health = HealthListener(settings, engine) if index == 0 else None
    if health is not None:
        health.start()
    tune_collector()
    # What `/readyz` says about this worker's subscription (the HTTP workers are elsewhere).
    broker = BrokerReporter(engine, node_id(settings), index)
    while not done.wait(PARENT_POLL_S) and os.getppid() == parent:
        broker.report(*worker.broker_state(), time.time())
    if health is not None:
        health.stop()
    worker.stop()
    engine.dispose()


def _round_failed(doing: str, exc: SQLAlchemyError) -> None:
    if is_unavailable(exc):
        DATABASE.failed(exc, doing)
    else:
        # A busy database (SQLite locked under load) is tried again next round.
        log.warning("%s failed: %s", doing, type(exc).__name__)


def run_anchoring(overrides: dict[str, Any], parent: int) -> None:
    """The anchoring process, until signalled: every node runs one, and the one holding the
    anchorer's role (`api.roles`) anchors every log; the others wait to take it over.

    Signalled while it holds the role, it hands over: it sends nothing more, waits (at most
    `ANCHOR_HAND_OVER_S`) for its anchor transactions in flight to be final, records them,
    and only then lets go of the role, so the next holder never anchors beside one of ours.
    The anchorer is crash-safe by design, so a kill at any point (`serve` kills children
    that outlast `CHILD_STOP_S`, a lost host) loses nothing either."""
    stopping = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        stopping.set()  # no traceback, and the round under way ends before the hand-over

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    die_with_parent(parent)
    from api.anchoring import AnchoringService

    json_logging.configure()
    settings = load_settings(**overrides)
    engine = make_engine(settings)
    election = Election(engine, [Role.ANCHORER], node=node_id(settings))
    service: AnchoringService | None = None
    while os.getppid() == parent and not stopping.is_set():
        if election.refresh():
            if service is None:  # elected: connect (or deploy the embedded chain) now
                service = AnchoringService(settings, engine)
                service.start()
            try:
                service.step()
                DATABASE.ok()
            except SQLAlchemyError as exc:
                _round_failed("anchoring round", exc)
        elif service is not None:
            # Another node anchors now; taken back, anchoring starts afresh from the database.
            service.close()
            service = None
        stopping.wait(PARENT_POLL_S)
    if service is not None:
        if election.holds(Role.ANCHORER):
            service.hand_over(time.monotonic() + ANCHOR_HAND_OVER_S)  # says what it left
        service.close()
    election.close()
    engine.dispose()


def run_cosigning(overrides: dict[str, Any], parent: int) -> None:
    """The process that asks witnesses to cosign checkpoints (api.cosigning), until signalled:
    its own process, so a slow witness never holds up ingest or anchoring."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    die_with_parent(parent)
    from api.cosigning import CosigningService

    json_logging.configure()
    settings = load_settings(**overrides)
    engine = make_engine(settings)
    service = CosigningService(settings, engine)
    election = Election(engine, [Role.COSIGNER], node=node_id(settings))
    next_round = 0.0
    while os.getppid() == parent:
        if time.monotonic() >= next_round:
            next_round = time.monotonic() + settings.witness_interval_s
            try:
                if election.refresh():  # one node's cosigner asks the witnesses
                    service.step()
                    DATABASE.ok()
            except SQLAlchemyError as exc:
                _round_failed("cosigning round", exc)
        time.sleep(min(PARENT_POLL_S, settings.witness_interval_s))
    election.close()
    engine.dispose()


def _raise_stopped(signum: int, frame: object) -> None:
    raise ServeStopped(signum)


def _stop_children(children: list[BaseProcess]) -> None:
    for child in children:
        if child.is_alive():
            child.terminate()
    deadline = time.monotonic() + CHILD_STOP_S
    for child in children:
        child.join(timeout=max(0.0, deadline - time.monotonic()))
    for child in children:
        if child.is_alive():
            log.error("%s did not stop within %ss; killing it", child.name, CHILD_STOP_S)
            child.kill()
            child.join(timeout=5)


ASKED_TO_STOP: Final = frozenset({0, -signal.SIGINT, -signal.SIGTERM})
"""Exit codes of a child that was asked to stop: Ctrl-C in a terminal reaches the whole
process group, so the children may end a moment before `serve` begins stopping them. (A
worker stopped so and not by `serve` is still noticed: its row goes stale.)"""


class ChildWatch:
    """Says, once, when a child of `serve` ends while `serve` runs: an error line, and for
    an ingest worker a `stopped` broker status, so `/readyz` answers 503 at once rather than
    when its row goes stale. (Children are not restarted: the node needs its operator.)"""

    def __init__(self, children: list[BaseProcess], engine: Engine, node: str) -> None:
        self._children = children
        self._engine = engine
        self._node = node
        self._said: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kitledger-child-watch",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(PARENT_POLL_S):
            for child in self._children:
                if child.exitcode is not None and child.name not in self._said:
                    self._said.add(child.name)
                    if child.exitcode not in ASKED_TO_STOP:
                        self._ended(child)

    def _ended(self, child: BaseProcess) -> None:
        log.error("%s process exited with code %s; this node runs without it until serve is "
                  "restarted (/readyz answers 503)", child.name, child.exitcode)
        if child.name.startswith(INGEST_PREFIX):
            worker = int(child.name.removeprefix(INGEST_PREFIX))
            try:
                write_status(self._engine, self._node, worker, BrokerState.STOPPED,
                             f"its process exited with code {child.exitcode}",
                             datetime.now(UTC))
            except SQLAlchemyError as exc:  # its row goes stale instead
                log.warning("could not record the stopped ingest worker: %s",
                            type(exc).__name__)


def serve(options: ServeOptions) -> None:
    import uvicorn

    json_logging.configure()
    # Workers read settings from the environment; pass command-line overrides through it.
    for name, value in options.overrides.items():
        os.environ[f"KITLEDGER_{name.upper()}"] = str(value)
    # One id for every process of this node (before any is started).
    os.environ[NODE_ENV] = node_id(load_settings(**options.overrides))
    json_logging.set_node(os.environ[NODE_ENV])
    context = multiprocessing.get_context("spawn")
    me = os.getpid()
    children: list[BaseProcess] = [
        context.Process(target=run_ingest, args=(i, options.overrides, me),
                        name=f"{INGEST_PREFIX}{i}")
        for i in range(options.ingest_workers)
    ]
    settings = load_settings(**options.overrides)
    children.append(context.Process(target=run_anchoring, args=(options.overrides, me),
                                    name="anchoring"))
    if settings.witnesses:
        children.append(context.Process(target=run_cosigning, args=(options.overrides, me),
                                        name="cosigning"))
    # uvicorn restores this handler after its graceful shutdown and re-raises SIGTERM into it:
    # the exception unwinds to `finally` below, where the default handler would have ended the
    # process and orphaned every child.
    signal.signal(signal.SIGTERM, _raise_stopped)
    webhook_engine = make_engine(settings)
    webhooks = WebhookDispatcher(webhook_engine, settings)  # a thread: it mostly waits on I/O
    webhook_election = Election(webhook_engine, [Role.WEBHOOKS], node=node_id(settings))
    node = node_id(settings)
    watch = ChildWatch(children, webhook_engine, node)
    try:
        try:  # not ready until each ingest worker has subscribed (`api.broker_status`)
            expect_workers(webhook_engine, node, options.ingest_workers, datetime.now(UTC))
        except SQLAlchemyError as exc:
            log.warning("could not record this node's ingest workers: %s", type(exc).__name__)
        for child in children:
            child.start()
        watch.start()
        webhooks.start(elected=lambda: bool(webhook_election.refresh()))
        uvicorn.run("api.serve:build_app", factory=True, host=options.host, port=options.port,
                    workers=options.workers, log_config=None)
    except (ServeStopped, KeyboardInterrupt):
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut this short
        watch.stop()  # children stopped from here on are meant to
        webhooks.stop()
        webhook_election.close()
        _stop_children([c for c in children if c.pid is not None])
        try:
            forget_node(webhook_engine, node)
        except SQLAlchemyError as exc:  # a database away: its rows go stale, then are removed
            log.warning("could not remove this node's broker status: %s", type(exc).__name__)
        webhook_engine.dispose()
