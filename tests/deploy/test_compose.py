"""docker/docker-compose.yml against the Compose Specification's JSON schema (the format of Docker
Compose v2, `docker compose`; vendored in tests/deploy/compose_spec/, see its README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml

from tests.deploy.support import DOCKER

SCHEMA = json.loads((Path(__file__).parent / "compose_spec" / "compose-spec.json").read_text())
COMPOSE = DOCKER / "docker-compose.yml"


def test_the_compose_file_follows_the_compose_specification():
    document = yaml.safe_load(COMPOSE.read_text())
    validator = jsonschema.Draft7Validator(SCHEMA)
    problems = [
        f"{'/'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"
        for error in validator.iter_errors(document)
    ]
    assert problems == []


def test_the_compose_file_needs_compose_v2():
    """The top-level `name` is the Compose Specification's, which only Compose v2 reads (the
    README says so); the file has no `version`, which the specification deprecates."""
    document = yaml.safe_load(COMPOSE.read_text())
    assert document["name"] == "dlwp-serving"
    assert "version" not in document
