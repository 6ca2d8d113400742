"""The machine a profile describes: CPU, caches, GPUs, library versions, threads, backend.

Fit cost models on the machine they describe : the profile carries this record so a
reader can tell which machine a curve came from.  The hostname is stored only as a short hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import os
import platform
import socket
import sys
from pathlib import Path
from typing import Any

INTERESTING_FLAGS = ("avx2", "fma", "avx512", "amx", "avx_vnni", "sve", "neon", "asimd")


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def cpu_info() -> dict[str, Any]:
    """Model, ISA flags of interest, sockets/cores/threads, and cache sizes from /proc and /sys."""
    text = _read("/proc/cpuinfo")
    model: str | None = None
    flags: set[str] = set()
    physical: set[tuple[str, str]] = set()
    phys_id = ""
    for line in text.splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key in ("model name", "Model") and model is None:
            model = value
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
        elif key == "physical id":
            phys_id = value
        elif key == "core id":
            physical.add((phys_id, value))
    logical = os.cpu_count() or 1
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = logical
    return {
        "cpu_model": model or platform.processor() or platform.machine(),
        "cpu_flags": sorted(f for f in flags if f.startswith(INTERESTING_FLAGS)),
        "logical_cpus": logical,
        "physical_cores": len(physical) or logical,
        "available_cpus": affinity,
        "l2_cache_bytes": cache_bytes(2),
        "l3_cache_bytes": cache_bytes(3),
    }


def cache_bytes(level: int) -> int | None:
    """Size of the first cache of this level seen by cpu0 (per instance), from sysfs."""
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    for index in sorted(base.glob("index*")):
        if _read(str(index / "level")).strip() == str(level) and "Instruction" not in _read(str(index / "type")):
            size = _read(str(index / "size")).strip().upper()
            mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(size[-1:], 1)
            try:
                return int(size.rstrip("KMG")) * mult
            except ValueError:
                return None
    return None


def package_version(name: str) -> str | None:
    """Installed version without importing the package (torchao costs ~3 s to import)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def gpu_info() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"cuda_available": False, "gpu_count": 0, "gpu_names": [], "cuda_version": None}
    try:
        if torch.cuda.is_available():
            n = torch.cuda.device_count()
            info.update(cuda_available=True, gpu_count=n, cuda_version=torch.version.cuda,
                        gpu_names=[torch.cuda.get_device_name(i) for i in range(n)],
                        gpu_memory_bytes=[torch.cuda.get_device_properties(i).total_memory for i in range(n)])
    except Exception as e:  # a broken driver should not stop a CPU calibration
        info["cuda_error"] = f"{type(e).__name__}: {e}"
    return info


def capture_env() -> dict[str, Any]:
    import torch

    gpus = gpu_info()
    env: dict[str, Any] = {
        **cpu_info(),
        **gpus,
        "torch_version": torch.__version__,
        "torchao_version": package_version("torchao"),
        "numpy_version": package_version("numpy"),
        "backend": "nccl" if gpus["cuda_available"] else "gloo",
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "torch_threads": torch.get_num_threads(),
        "mkldnn_available": bool(torch.backends.mkldnn.is_available()),
        "hostname_sha256_8": hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8],
        "python_version": platform.python_version(),
        "python_executable": Path(sys.executable).name,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    return env
