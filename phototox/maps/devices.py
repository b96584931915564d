"""Choosing the compute device: ``auto``, ``cpu``, ``cuda`` (or ``cuda:N``) and ``mps``."""

from __future__ import annotations

import torch

from phototox.errors import PhototoxError


def resolve_device(name: str = "auto") -> torch.device:
    """Turn a device name into a torch device, with a clear error when it is not available."""
    name = (name or "auto").lower()
    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps and mps.is_available())
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_ok else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda") or name == "gpu":
        if not torch.cuda.is_available():
            raise PhototoxError(
                f"device {name!r} requested but no CUDA GPU is available to PyTorch "
                f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); use 'cpu' or 'auto'"
            )
        return torch.device("cuda" if name == "gpu" else name)
    if name == "mps":
        if not mps_ok:
            raise PhototoxError("device 'mps' requested but Apple Metal is not available; use 'cpu' or 'auto'")
        return torch.device("mps")
    raise PhototoxError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps")


def release(device: torch.device) -> None:
    """Give cached accelerator memory back (e.g. at the end of a CellProfiler run)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()
