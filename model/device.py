"""Picking the torch device and the process-wide torch settings a run asks for."""

from __future__ import annotations

import os

import torch

from runtime import set_torch_threads


def resolve_device(name: str) -> torch.device:
    """"auto" -> CUDA when available, else CPU; otherwise the named device (checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"train.device: got {name!r}; allowed: auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device: got {name!r} but no CUDA device is available; use auto or cpu")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"train.device: got {name!r}; allowed: auto, cpu, cuda or cuda:N")
    return device


def apply_torch_settings(device: torch.device, deterministic: bool, num_threads: int) -> None:
    """Thread count and deterministic algorithms (process-wide: torch has no per-run switch)."""
    set_torch_threads(num_threads)
    if deterministic:
        if device.type == "cuda":
            # cuBLAS reads this when it first starts; needed for deterministic matmuls.
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


def rng_devices(device: torch.device) -> list:
    """The devices whose RNG `torch.random.fork_rng` must save around work on `device`."""
    return [device] if device.type == "cuda" else []


def torch_rng_state(device: torch.device) -> dict:
    """The global torch RNG state (and `device`'s CUDA one) as a dict a run keeps as its own stream."""
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_torch_rng_state(state: dict, device: torch.device) -> None:
    """Put a run's saved stream (torch_rng_state) back into the global torch RNG."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
