"""`service` (or `python -m service`): starts the server with the settings from the environment."""

from __future__ import annotations

import sys

import uvicorn

from service.logs import log_config
from service.settings import Settings


def main() -> int:
    settings = Settings()
    uvicorn.run(
        "service.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_config=log_config(settings.log_level, settings.log_format),
        # SIGTERM: stop accepting, let requests in flight finish for up to this long, then exit.
        timeout_graceful_shutdown=settings.drain_timeout_s,
        access_log=False,  # the service's middleware logs each request, with its id
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
