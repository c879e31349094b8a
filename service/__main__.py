"""`service` (or `python -m service`): starts the server with the settings from the environment."""

from __future__ import annotations

import signal
import sys

from pydantic import ValidationError

from service.server import serve
from service.settings import Settings


def main() -> int:
    try:
        settings = Settings()
    except ValidationError as error:
        for problem in error.errors(include_url=False):
            name = "_".join(map(str, problem["loc"])).upper()
            message = problem["msg"].removeprefix("Value error, ")
            print(f"cannot start: {f'SERVICE_{name}' if name else 'settings'}: {message}",
                  file=sys.stderr)  # fmt: skip
        return 1
    # The default repository is relative ("models"): started from another folder, the service
    # would otherwise die in its lifespan with a traceback that never names the setting.
    repository = settings.model_repository.resolve()
    if not repository.is_dir():
        print(
            f"cannot start: the model repository {repository} does not exist; set "
            "SERVICE_MODEL_REPOSITORY to the folder that holds the models (or start the service "
            "from the project's root folder, where `models` is)",
            file=sys.stderr,
        )
        return 1
    # uvicorn handles SIGTERM itself (graceful shutdown), then raises it again for the handler it
    # found; with the default one, a clean stop would end as "killed by SIGTERM" (exit code 143).
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    serve(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
