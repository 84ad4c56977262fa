"""State-dict file I/O, the bottom of the package: safe loading, unwrapping, strict loading, atomic saving.

Checkpoints are untrusted input. ``.pth``/``.ckpt`` files go through ``torch.load(..., weights_only=True)``,
which only rebuilds tensors and plain containers and refuses any pickled code; ``.safetensors`` files
hold no code at all, and their JSON header is size-checked and parsed before any tensor is read. Both
come back as the same dict (tensors under ``params``, this package's records under their keys), so
every loader reads either. Nothing here knows a network: the model layer builds networks on top.
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


# Header key under which this package's safetensors files keep their records (a JSON object).
SAFETENSORS_RECORD = "sftgan_lit"
MAX_SAFETENSORS_HEADER = 16 * 1024 * 1024  # bytes: a real header of a few hundred tensors is a few KiB


def read_safetensors(path: str | os.PathLike) -> tuple[StateDict, dict]:
    """The tensors of a ``.safetensors`` file and its header metadata (``__metadata__``, with this package's
    record decoded from JSON under ``SAFETENSORS_RECORD``); a malformed or oversized header names the file."""
    import json
    import struct

    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path}: not a safetensors file ({size} bytes, no header)")
        (length,) = struct.unpack("<Q", head)
        if length > MAX_SAFETENSORS_HEADER or length > size - 8:
            raise CheckpointError(
                f"{path}: safetensors header of {length} bytes is oversized (file {size} bytes, limit "
                f"{MAX_SAFETENSORS_HEADER}); the file is corrupted or not a safetensors file"
            )
        try:
            header = json.loads(f.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CheckpointError(f"{path}: malformed safetensors header ({err})") from err
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: malformed safetensors header (not a JSON object)")
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise CheckpointError(f"{path}: malformed safetensors metadata (must map strings to strings)")
    meta = dict(meta)
    if SAFETENSORS_RECORD in meta:
        try:
            record = json.loads(meta[SAFETENSORS_RECORD])
        except json.JSONDecodeError as err:
            raise CheckpointError(f"{path}: malformed '{SAFETENSORS_RECORD}' record in the header ({err})") from err
        if not isinstance(record, dict):
            raise CheckpointError(f"{path}: the '{SAFETENSORS_RECORD}' header record must be a JSON object")
        meta[SAFETENSORS_RECORD] = record
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: unreadable safetensors file ({err})") from err
    return tensors, meta


def save_safetensors(tensors: Mapping[str, torch.Tensor], path: str | os.PathLike, record: Mapping) -> None:
    """Write ``tensors`` (contiguous CPU copies) as ``.safetensors`` with ``record`` as JSON in the header
    (plus its plain string fields, which any safetensors reader shows), atomically."""
    import json

    from safetensors.torch import save

    meta = {k: str(v) for k, v in record.items() if isinstance(v, str | int | float) and not isinstance(v, bool)}
    meta[SAFETENSORS_RECORD] = json.dumps(record, sort_keys=True)
    data = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=meta)
    atomic_write_bytes(path, data)


def load_checkpoint_file(path: str | os.PathLike) -> dict:
    """A checkpoint as a dict, on CPU: ``torch.load`` with ``weights_only=True``, or for ``.safetensors``
    ``{"params": tensors, **record}`` (the record this package writes in the header); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix.lower() == ".safetensors":
        tensors, meta = read_safetensors(path)
        record = meta.get(SAFETENSORS_RECORD, {})
        return {**{k: v for k, v in record.items() if k != "params"}, "params": tensors}
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
