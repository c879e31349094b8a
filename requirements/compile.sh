#!/usr/bin/env bash
# Regenerates requirements/constraints.txt, the lock that README's install commands use
# (`pip install -c requirements/constraints.txt -e ".[serve]"`): one resolution of every extra
# but `gpu` together, so that any extras installed into one environment agree with each other
# (`clients` beside `serve` keeps the service's protobuf). Run it after changing a dependency in
# pyproject.toml, or with --upgrade to move every pin to its newest allowed release, then run the
# tests and commit both files. Needs uv (`python3 -m pip install uv`, or UV=/path/to/uv).
set -euo pipefail
cd "$(dirname "$0")/.."
uv="${UV:-uv}"
if ! command -v "$uv" >/dev/null; then
    echo "requirements/compile.sh needs uv: python3 -m pip install uv (or set UV=/path/to/uv)" >&2
    exit 2
fi
"$uv" pip compile pyproject.toml --universal --python-version 3.11 \
    --extra train --extra serve --extra clients --extra dev --extra loadtest \
    --custom-compile-command requirements/compile.sh \
    --output-file requirements/constraints.txt "$@"
