"""What a version records about where it was made: the library versions and the machine. No
TensorFlow: `trainer import` of an ONNX graph records them too."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path


def library_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name, distributions in (
        ("tensorflow", ("tensorflow-cpu", "tensorflow")),
        *((name, (name,)) for name in ("keras", "tf2onnx", "onnx", "onnxruntime", "numpy")),
    ):
        for distribution in distributions:
            try:
                found[name] = package_version(distribution)
                break
            except PackageNotFoundError:
                continue
    return found


def machine() -> str:
    """e.g. 'Linux x86_64, 2 CPUs (Intel(R) Xeon(R) …)'."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    model = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        model = names[0] if names else model
    return f"{platform.system()} {platform.machine()}, {cpus} CPUs ({model or 'unknown CPU'})"
