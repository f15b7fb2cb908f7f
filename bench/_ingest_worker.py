"""Helper processes for ``vigil bench ingest``: Vigil with only the ingestion stages.

``python bench/_ingest_worker.py worker`` is ``vigil worker`` running just the ingestion stages
(metrics and errors ingest, inventory), and ``python bench/_ingest_worker.py up --port P`` is
``vigil up`` (API and those stages in one process). Settings come from the environment, as for
``vigil``. They isolate the ingest path from the analysis stages that share a real worker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Iterator

from vigil.backends import Backends
from vigil.config import load_settings
from vigil.pipeline.runner import Runner
from vigil.pipeline.stages.ingestion import ingestion_stages


def _quiet_server_class() -> type:
    import uvicorn

    class QuietServer(uvicorn.Server):
        # This process handles SIGTERM itself, so the API and the stages stop together.
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return QuietServer


async def main(args: argparse.Namespace) -> None:
    backends = Backends.from_settings(load_settings())
    await backends.start()
    runner = Runner(backends.bus, ingestion_stages(backends))
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await runner.start()
    server = None
    serving = None
    if args.mode == "up":
        from vigil.api.app import create_app

        _QuietServer = _quiet_server_class()

        import uvicorn

        config = uvicorn.Config(
            create_app(backends, manage_backends=False),
            host="127.0.0.1",
            port=args.port,
            log_config=None,
            access_log=False,
            lifespan="on",
        )
        server = _QuietServer(config)
        serving = asyncio.create_task(server.serve())
    await stopping.wait()
    if server is not None and serving is not None:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await serving
    await runner.stop()
    await backends.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["worker", "up"])
    parser.add_argument("--port", type=int, default=8080)
    asyncio.run(main(parser.parse_args()))
