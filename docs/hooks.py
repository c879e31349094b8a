"""MkDocs hooks (mkdocs.yml `hooks:`), run at every build, offline:

- the settings reference: `<!-- settings-reference -->` in a page becomes tables generated from
  the pydantic settings of `service/settings.py` (name, type, default, limits, description), so
  the page can never disagree with the code;
- the benchmark reports: every file of `reports/` is published under `reports/`; the pages link
  them as `../reports/benchmark.md` (right in the repository), made `reports/benchmark.md` here,
  so a strict build checks those links too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import annotated_types
from mkdocs.structure.files import File
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `service` from this checkout, installed or not

from service import settings as service_settings  # noqa: E402

MARKER = "<!-- settings-reference -->"
# Words for the fields whose `Field` has no description (by model and field); the build fails
# when one of these names a field the code no longer has.
MEANINGS = {
    "Settings": {
        "default_batching": "adaptive batching of every model not named in `batching` (fields "
        "below); `max_wait_ms` > 0 also waits for company under concurrent traffic",
        "host": "the address HTTP and gRPC listen on",
        "port": "the HTTP port (REST: V2, V1, typed, repository API, /metrics, /docs)",
        "workers": "worker processes, each with its own models and its share of the CPUs; "
        "/metrics sums them all (Prometheus multiprocess mode)",
        "log_level": "the service's log level",
        "log_format": "`json`: one JSON object per line, with the request id",
    },
    "VersionPolicy": {
        "latest": "serve the N newest versions",
        "specific": "serve the versions named",
    },
}
REPORTS = REPO / "reports"
PREFIX = service_settings.Settings.model_config["env_prefix"]


def on_files(files, config):
    """Adds the reports (Markdown, charts, JSON, CSV) to the site, under reports/."""
    for path in report_files():
        if path.suffix != ".py":
            relative = path.relative_to(REPO).as_posix()
            if files.get_file_from_path(relative) is None:
                files.append(
                    File(relative, str(REPO), config["site_dir"], config["use_directory_urls"])
                )
    return files


def report_files() -> list[Path]:
    """The reports git keeps (not the benchmarks' ignored working files); every file outside
    a git checkout."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "reports"], cwd=REPO, capture_output=True, check=True
        ).stdout.decode()
        return [REPO / name for name in listed.split("\0") if name and (REPO / name).is_file()]
    except (OSError, subprocess.CalledProcessError):
        return sorted(path for path in REPORTS.rglob("*") if path.is_file())


def on_page_markdown(markdown: str, page, config, files) -> str:
    # The pages link the reports as `../reports/…`, which is right where they are read in the
    # repository (GitHub); in the site the reports are under reports/ beside the pages.
    if "/" not in page.file.src_uri and not page.file.src_uri.startswith("reports"):
        markdown = markdown.replace("](../reports/", "](reports/")
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, settings_reference())
    return markdown


def settings_reference() -> str:
    """The tables: every setting of `Settings`, then the fields of its nested models."""
    sections = [
        table(service_settings.Settings, lambda name: f"`{PREFIX}{name.upper()}`", "variable"),
        f"### `{PREFIX}DEFAULT_BATCHING` and `{PREFIX}BATCHING`\n\n"
        f"{doc(service_settings.Batching)} A JSON object with these fields; "
        f"`{PREFIX}BATCHING` maps model names to such objects, e.g. "
        '`{"imdb": {"max_batch_size": 128}}`.\n\n'
        + table(service_settings.Batching, lambda name: f"`{name}`", "field"),
        f"### `{PREFIX}VERSION_POLICY`\n\n{doc(service_settings.VersionPolicy)} Per model: "
        '`{"imdb": {"latest": 1}, "boston": {"specific": [1, 2]}}`.\n\n'
        + table(service_settings.VersionPolicy, lambda name: f"`{name}`", "field"),
    ]
    return "\n\n".join(sections)


def doc(model: type[BaseModel]) -> str:
    return " ".join((model.__doc__ or "").split())


def table(model: type[BaseModel], name_of, heading: str) -> str:
    meanings = MEANINGS.get(model.__name__, {})
    unknown = set(meanings) - set(model.model_fields)
    if unknown:
        raise ValueError(f"docs/hooks.py MEANINGS names fields {model.__name__} lacks: {unknown}")
    rows = [f"| {heading} | type | default | allowed | meaning |", "|---|---|---|---|---|"]
    for name, field in model.model_fields.items():
        cells = [name_of(name), type_of(field), default_of(name, field), limits_of(field)]
        cells.append(" ".join((field.description or meanings.get(name, "")).split()))
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows)


def type_of(field: FieldInfo) -> str:
    annotation = field.annotation
    text = getattr(annotation, "__name__", None) or str(annotation)
    if getattr(annotation, "__origin__", None) is not None or "|" in text or "[" in text:
        text = str(annotation)
    text = text.replace("typing.", "").replace("service.settings.", "")
    text = text.replace("pathlib.", "").replace("pydantic.types.", "")
    return f"`{text}`"


def default_of(name: str, field: FieldInfo) -> str:
    if field.default_factory is not None:
        value: Any = field.default_factory()
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if isinstance(value, Path):
        value = str(value)
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and name.endswith("_bytes")
        and value >= 1024
    ):
        return f"`{value}` ({human_bytes(value)})"
    return f"`{json.dumps(value)}`"


def human_bytes(value: int) -> str:
    for unit in ("GiB", "MiB", "KiB"):
        size = {"GiB": 2**30, "MiB": 2**20, "KiB": 2**10}[unit]
        if value % size == 0:
            return f"{value // size} {unit}"
    return f"{value} bytes"


def limits_of(field: FieldInfo) -> str:
    parts = []
    for item in field.metadata:
        for attribute, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            value = getattr(item, attribute, None)
            if value is not None:
                parts.append(f"{sign} {value}")
        if isinstance(item, annotated_types.MinLen):
            parts.append(f"at least {item.min_length} item(s)")
    text = str(field.annotation)
    if "Literal" in text:
        parts.append(", ".join(f"`{v}`" for v in field.annotation.__args__))
    return ", ".join(parts) or "–"
