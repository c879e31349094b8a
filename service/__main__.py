"""`service` (or `python -m service`): starts the server with the settings from the environment."""

from __future__ import annotations

import signal
import sys

from service.server import serve
from service.settings import Settings


def main() -> int:
    settings = Settings()
    # uvicorn handles SIGTERM itself (graceful shutdown), then raises it again for the handler it
    # found; with the default one, a clean stop would end as "killed by SIGTERM" (exit code 143).
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    serve(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
