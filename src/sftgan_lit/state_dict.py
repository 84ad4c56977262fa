"""State-dict file I/O, the bottom of the package: safe loading, unwrapping, strict loading, atomic saving.

Checkpoints are untrusted input. Everything goes through ``torch.load(..., weights_only=True)``, which
only rebuilds tensors and plain containers and refuses any pickled code. Nothing here knows a network:
the model layer builds networks on top of these functions.
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn

from .files import atomic_write_bytes

StateDict = dict[str, torch.Tensor]


class CheckpointError(ValueError):
    """A checkpoint that cannot be used as asked; the message names the file and what is wrong."""


def load_checkpoint_file(path: str | os.PathLike) -> dict:
    """``torch.load`` with ``weights_only=True`` on CPU; errors name the file and the fix."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "global" not in str(err).lower():  # it names no class or function to run: the bytes are no checkpoint
            raise CheckpointError(f"{path}: not a PyTorch checkpoint (torch.load cannot read its bytes)") from err
        raise CheckpointError(
            f"{path}: refused to load. It holds Python objects other than tensors and plain containers, which "
            f"weights_only loading does not execute (a checkpoint can run arbitrary code otherwise). Re-save it "
            f"as a plain state dict (torch.save(model.state_dict(), ...)) from a source you trust. Detail: {err}"
        ) from err
    except (RuntimeError, EOFError, OSError, KeyError, ValueError, IndexError, AttributeError) as err:
        # torch.load on bytes that are no checkpoint raises many kinds of errors; all mean the same here
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a dict of tensors, got {type(obj).__name__}")
    return dict(obj)


def unwrap_state_dict(obj: Mapping, prefixes: tuple[str, ...] = (), source: str = "checkpoint") -> StateDict:
    """The tensors of a model from the common checkpoint wrappers.

    Handles ``{'state_dict': ...}`` (Lightning, taking the keys under the first of ``prefixes`` found),
    ``{'params_ema': ...}`` / ``{'params': ...}`` (BasicSR), DataParallel's ``module.`` prefix, and a bare
    state dict.
    """
    sd: Mapping = obj
    for key in ("state_dict", "params_ema", "params"):
        if key in sd and isinstance(sd[key], Mapping):
            sd = sd[key]
            break
    if prefixes:
        for prefix in prefixes:
            sub = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
            if sub:
                sd = sub
                break
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{source}: entries that are not tensors: {bad[:10]}")
    return dict(sd)


def load_state_dict_file(path: str | os.PathLike, prefixes: tuple[str, ...] = ()) -> StateDict:
    """A state dict from a file: ``load_checkpoint_file`` then ``unwrap_state_dict``."""
    return unwrap_state_dict(load_checkpoint_file(path), prefixes, source=str(path))


def listing(keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def load_strict(
    module: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    source: str = "checkpoint",
    required: Iterable[str] | None = None,
) -> None:
    """``module.load_state_dict(strict=True)`` with one error listing missing, unexpected and mis-shaped keys.

    ``required`` narrows the keys that must be present (a partial load, e.g. only a generator's trunk);
    unexpected and mis-shaped keys are errors either way.
    """
    own = module.state_dict()
    missing = [k for k in (own if required is None else required) if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    misshaped = [
        f"{k} {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in own.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or misshaped:
        parts = [f"{source} does not match {type(module).__name__}:"]
        if missing:
            parts.append(f"missing keys ({len(missing)}): {listing(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {listing(unexpected)}")
        if misshaped:
            parts.append(f"mis-shaped keys ({len(misshaped)}): {listing(misshaped)}")
        raise CheckpointError("\n  ".join(parts))
    module.load_state_dict(state_dict, strict=required is None)


def save_atomic(obj: Mapping, path: str | os.PathLike) -> None:
    """``torch.save`` through a temporary file and a rename: a reader polling for the file (e.g.
    ``checkpoint=latest``) never sees half of it."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def cpu_state(module: nn.Module) -> StateDict:
    """A detached CPU copy of ``module``'s state dict (what exports write)."""
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
