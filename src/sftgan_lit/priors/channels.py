"""Continuous prior channels: per-pixel values with a name, a unit and a range (a degradation's strength, a depth).

A prior is a stack of channels: its categorical group (class probabilities that sum to 1, ``Prior.num_classes``
of them) first, then its continuous channels in the configured order (``prior.continuous``). A continuous
channel is given and shown in its own unit (``noise_sigma=10`` means 8-bit levels); the network sees it
normalised to [0, 1] over the channel's range (``Channel.normalise``), so that every channel has the scale of
the probabilities beside it.

The known kinds are in ``CHANNELS`` (``prior.continuous: [noise_sigma, blur_sigma]``); any other is configured
in full (``{name: depth, unit: relative, low: 0, high: 1, default: 0}``). Adding a kind is one entry there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import torch

from ..tensors import range_problem
from .validation import PriorError


@dataclass(frozen=True)
class Channel:
    """One continuous channel: values in ``[low, high]`` (``unit``), ``default`` where nothing is known
    (the clean value of a degradation channel)."""

    name: str
    unit: str
    low: float
    high: float
    default: float
    description: str = ""

    def __post_init__(self) -> None:
        ok = all(isinstance(v, int | float) and math.isfinite(v) for v in (self.low, self.high, self.default))
        if (
            not self.name.isidentifier()
            or not ok
            or not self.low < self.high
            or not self.low <= self.default <= self.high
        ):
            raise PriorError(
                f"prior.continuous: channel {self.name!r} needs an identifier name and finite low < high with "
                f"low <= default <= high, got low={self.low}, high={self.high}, default={self.default}"
            )

    def normalise(self, values: torch.Tensor) -> torch.Tensor:
        """Values in the channel's unit -> [0, 1] over its range (what the network sees)."""
        return (values.float() - self.low) / (self.high - self.low)

    def physical(self, normalised: torch.Tensor) -> torch.Tensor:
        """The inverse of ``normalise``."""
        return normalised.float() * (self.high - self.low) + self.low

    def problem(self, values: torch.Tensor) -> str | None:
        """What is wrong with ``values`` (in the channel's unit) for this channel, or None."""
        if not torch.is_floating_point(values) and values.dtype not in (
            torch.int16,
            torch.int32,
            torch.int64,
            torch.uint8,
        ):
            return f"expected numbers, got {values.dtype}"
        what = f"{self.name}'s range [{self.low:g}, {self.high:g}] ({self.unit})"
        return range_problem(values.detach(), self.low, self.high, what, 1e-6 * (self.high - self.low))

    def check(self, values: torch.Tensor, source: str) -> None:
        problem = self.problem(values)
        if problem:
            raise PriorError(f"{source}: {self.name}: {problem}")

    def describe(self) -> str:
        return f"{self.name} [{self.low:g}, {self.high:g}] {self.unit}"

    def record(self) -> dict:
        """Plain values for a checkpoint's record (``from_record`` reads them back)."""
        return asdict(self)


#: the known kinds, by name; the degradation channels are those ``degradation=mapped`` draws and maps
CHANNELS: dict[str, Channel] = {
    c.name: c
    for c in (
        Channel(
            "noise_sigma", "8-bit levels", 0.0, 50.0, 0.0, "standard deviation of additive Gaussian noise in the LR"
        ),
        Channel(
            "blur_sigma", "LR pixels", 0.0, 1.0, 0.0, "Gaussian blur before the bicubic downscale (0: bicubic only)"
        ),
        Channel("jpeg_quality", "JPEG quality", 0.0, 100.0, 100.0, "quality of the LR's JPEG (100: none)"),
        Channel("depth", "relative (0 near, 1 far)", 0.0, 1.0, 0.0, "a depth map from a monocular depth model"),
    )
}


def parse_channels(spec: Sequence | None) -> tuple[Channel, ...]:
    """``prior.continuous`` -> channels: each entry a known name (``CHANNELS``) or a full mapping
    ``{name, unit, low, high, default}``; names must be unique."""
    out: list[Channel] = []
    for entry in spec or ():
        if isinstance(entry, str):
            if entry not in CHANNELS:
                raise PriorError(
                    f"prior.continuous: unknown channel {entry!r}; known: {', '.join(CHANNELS)}, or give "
                    "{name: ..., unit: ..., low: ..., high: ..., default: ...}"
                )
            out.append(CHANNELS[entry])
        elif isinstance(entry, Mapping):
            values = dict(entry)
            known = CHANNELS.get(values.get("name"))
            base = asdict(known) if known else {"unit": "", "description": ""}
            try:
                out.append(Channel(**{**base, **values}))
            except TypeError as err:
                raise PriorError(f"prior.continuous: {dict(entry)}: {err}") from None
        else:
            raise PriorError(f"prior.continuous: expected channel names or mappings, got {entry!r}")
    names = [c.name for c in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise PriorError(f"prior.continuous: channel {dup[0]!r} given twice")
    return tuple(out)


def from_record(values: Sequence[Mapping] | None) -> tuple[Channel, ...]:
    """The channels a checkpoint's record lists (``Channel.record``)."""
    return tuple(Channel(**dict(v)) for v in values or ())


def stack_problem(expected: Sequence[Channel], found: Sequence[Channel]) -> str | None:
    """How the continuous channels ``found`` (a model's) differ from ``expected`` (the prior's), or None."""
    a = [(c.name, c.low, c.high) for c in expected]
    b = [(c.name, c.low, c.high) for c in found]
    if a == b:
        return None
    show = lambda cs: "[" + ", ".join(c.describe() for c in cs) + "]" if cs else "none"
    return f"continuous channels: prior {show(expected)}, model {show(found)}"
