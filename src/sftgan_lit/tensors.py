"""Value checks on the tensors the public API takes: images in [0, 1], class probabilities, finiteness.

The networks' ``forward`` (generator, segmenters) and ``imresize`` call these, so a NaN, an image in
0-255 or [-1, 1], a prior of logits or one summing to 3 fails with a message naming the tensor and
what was expected, instead of returning a plausible-looking wrong result. Each check is a handful of
reductions read back with one host sync.

Trusted loops (training steps, tiles of an already-checked image) skip them with ``trusted_inputs()``;
they are also skipped while tracing, exporting to ONNX or compiling, where a data-dependent branch
cannot be recorded. Shape checks are not affected by either.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import torch

# Bicubic resampling overshoots [0, 1] a little at hard edges (imresize does not clamp): tolerated,
# while 0-255 images and [-1, 1] images are far outside it.
IMAGE_MARGIN = 0.1
PROBS_ATOL = 2e-2  # sums of a bf16 softmax are ~1e-2 off; a sum of 3 or logits are far off

_trusted: contextvars.ContextVar[bool] = contextvars.ContextVar("sftgan_lit_trusted_inputs", default=False)


class TensorValueError(ValueError):
    """A tensor given to the public API with values it cannot take; the message names the tensor."""


@contextlib.contextmanager
def trusted_inputs() -> Iterator[None]:
    """Skip the value checks inside this block (inputs the caller made and checked itself)."""
    token = _trusted.set(True)
    try:
        yield
    finally:
        _trusted.reset(token)


def checking() -> bool:
    """Whether value checks run here: not in ``trusted_inputs()``, tracing, ONNX export or compilation."""
    if _trusted.get() or torch.jit.is_tracing() or torch.jit.is_scripting():
        return False
    return not (torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling())


def _stats(x: torch.Tensor, *extra: torch.Tensor) -> list[float]:
    """``[non-finite count, min, max, *extra]`` of ``x`` with one host sync (min/max over finite values)."""
    x = x.detach()
    finite = torch.isfinite(x)
    bad = (~finite).sum()
    safe = torch.where(finite, x, torch.zeros((), dtype=x.dtype, device=x.device)).float()
    return torch.stack([bad.float(), safe.amin(), safe.amax(), *extra]).tolist()


def check_image(x: torch.Tensor, name: str) -> None:
    """``x``: a floating-point RGB image (batch) with values in [0, 1] (bicubic overshoot of ``IMAGE_MARGIN``
    tolerated), finite. Raises ``TensorValueError`` naming ``name``, the range found and the likely fix."""
    if not torch.is_floating_point(x):
        raise TensorValueError(
            f"{name}: expected a float tensor with values in [0, 1], got {x.dtype} (an 8-bit image? use x.float() / 255)"
        )
    if not checking() or x.numel() == 0:
        return
    bad, low, high = _stats(x)
    if bad:
        raise TensorValueError(f"{name}: {int(bad)} non-finite values (NaN or inf) in {tuple(x.shape)}")
    if low < -IMAGE_MARGIN or high > 1 + IMAGE_MARGIN:
        hint = (
            " (looks like 0-255: divide by 255)"
            if high > 2
            else " (looks like [-1, 1]: use (x + 1) / 2)"
            if low < -0.5
            else ""
        )
        raise TensorValueError(f"{name}: values must be in [0, 1], found [{low:.4g}, {high:.4g}]{hint}")


def probs_problem(p: torch.Tensor, dim: int = -3, atol: float = PROBS_ATOL) -> str | None:
    """What is wrong with ``p`` as class probabilities along ``dim`` (finite, >= 0, <= 1, summing to 1), or None."""
    if not torch.is_floating_point(p):
        return f"expected float class probabilities, got {p.dtype}"
    if p.numel() == 0:
        return None
    err = (p.detach().float().sum(dim=dim) - 1).abs().nan_to_num(nan=0.0).amax()
    bad, low, high, worst = _stats(p, err)
    if bad:
        return f"{int(bad)} non-finite values (NaN or inf)"
    if low < -atol or high > 1 + atol:
        return f"values outside [0, 1] (min {low:.4g}, max {high:.4g}): logits? apply softmax over the classes"
    if worst > atol:
        return f"class probabilities do not sum to 1 (worst pixel off by {worst:.4g}, tolerance {atol})"
    return None


def check_probs(p: torch.Tensor, name: str) -> None:
    """``p``: class probabilities ``(N, C, H, W)`` over dim 1; a ``TensorValueError`` naming ``name`` otherwise."""
    if not checking():
        return
    problem = probs_problem(p, dim=1)
    if problem:
        raise TensorValueError(f"{name}: {problem}")


def check_unit(x: torch.Tensor, name: str) -> None:
    """``x``: finite values in [0, 1] (normalised continuous prior channels); a ``TensorValueError`` naming ``name``."""
    if checking():
        problem = range_problem(x, 0.0, 1.0, "[0, 1]", PROBS_ATOL)
        if problem:
            raise TensorValueError(f"{name}: {problem}")


def range_problem(x: torch.Tensor, low: float, high: float, what: str, margin: float = 0.0) -> str | None:
    """What is wrong with ``x`` as finite values in ``[low, high]`` (``margin`` tolerated; ``what`` names the
    range in the message), or None; one host sync."""
    if x.numel() == 0:
        return None
    bad, found_low, found_high = _stats(x)
    if bad:
        return f"{int(bad)} non-finite values (NaN or inf)"
    if found_low < low - margin or found_high > high + margin:
        return f"values {found_low:.4g}..{found_high:.4g} outside {what}"
    return None


def trusted(step):
    """Decorator: run ``step`` (a training or validation step on the package's own batches) in
    ``trusted_inputs()``, so that no value check syncs the device on every step."""
    import functools

    @functools.wraps(step)
    def wrapper(*args, **kwargs):
        with trusted_inputs():
            return step(*args, **kwargs)

    return wrapper
