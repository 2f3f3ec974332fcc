"""Running the service: ingest worker processes beside the uvicorn HTTP workers.

`kitledger serve` starts `--ingest-workers` processes, each an `IngestWorker` with its own
client id in the same MQTT shared-subscription group (so the broker splits the load), then
runs uvicorn with `--workers` HTTP processes built by `build_app` (a factory, so nothing is
built at import). Stopping the command stops the ingest processes; their unacknowledged
messages are redelivered by the broker to whichever worker runs next.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from dataclasses import dataclass
from typing import Any, Final

from fastapi import FastAPI

from api import logs
from api.app import create_app
from api.config import load_settings
from api.db import make_engine
from api.ingest.pipeline import IngestPipeline
from api.ingest.worker import IngestWorker

MAX_WORKERS: Final = 64
"""HTTP or ingest processes per `serve`: far beyond a 2-core store server, and a typo such as
`--workers 1000` is refused instead of forking a thousand processes."""


PARENT_POLL_S: Final = 0.5
"""How often an ingest process checks that `serve` is still running."""


@dataclass(frozen=True, slots=True)
class ServeOptions:
    host: str
    port: int
    workers: int
    ingest_workers: int
    overrides: dict[str, Any]


def build_app() -> FastAPI:
    """The uvicorn factory: settings from the environment (KITLEDGER_*)."""
    logs.configure()
    return create_app()


def run_ingest(index: int, overrides: dict[str, Any]) -> None:
    """One ingest worker process, until SIGTERM or SIGINT."""
    logs.configure()
    settings = load_settings(**overrides)
    engine = make_engine(settings)
    worker = IngestWorker(settings, IngestPipeline(engine, settings),
                          client_id=f"{settings.mqtt_client_id}-{index}")
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    parent = os.getppid()
    worker.start()
    # uvicorn re-raises SIGTERM after its shutdown, so the parent may die without stopping
    # us: watch for being orphaned as well as for our own signal.
    while not done.wait(PARENT_POLL_S) and os.getppid() == parent:
        pass
    worker.stop()
    engine.dispose()


def serve(options: ServeOptions) -> None:
    import uvicorn

    logs.configure()
    # Workers read settings from the environment; pass command-line overrides through it.
    for name, value in options.overrides.items():
        os.environ[f"KITLEDGER_{name.upper()}"] = str(value)
    context = multiprocessing.get_context("spawn")
    ingest = [
        context.Process(target=run_ingest, args=(i, options.overrides), name=f"ingest-{i}")
        for i in range(options.ingest_workers)
    ]
    for process in ingest:
        process.start()
    try:
        uvicorn.run("api.serve:build_app", factory=True, host=options.host, port=options.port,
                    workers=options.workers, log_config=None)
    finally:
        for process in ingest:
            process.terminate()
        for process in ingest:
            process.join(timeout=30)
