"""The degradation models by name (``degradation=NAME``, ``data.degradation.kind``): adding one is a module with
a ``Degradation`` subclass and its typed config, and one entry here."""

from __future__ import annotations

from dataclasses import asdict, fields, is_dataclass

from ..config import ConfigError, merged
from .base import KEY, Degradation
from .bicubic import Bicubic
from .mapped import Mapped
from .second_order import SecondOrder

DEGRADATIONS: dict[str, type[Degradation]] = {cls.name: cls for cls in (Bicubic, SecondOrder, Mapped)}


def make_degradation(cfg, scale: int) -> Degradation:
    """The degradation model of config ``cfg`` (``data.degradation``: a mapping or its schema; None: bicubic)
    for SR factor ``scale``. A key the model's schema does not have, or a value out of range, is a
    ``ConfigError`` naming ``data.degradation.<key>``."""
    values = {} if cfg is None else asdict(cfg) if is_dataclass(cfg) else dict(cfg)
    kind = values.pop("kind", None)
    kind = getattr(kind, "value", kind) or Bicubic.name
    if kind not in DEGRADATIONS:
        raise ConfigError(f"{KEY}.kind={kind}: must be one of {', '.join(DEGRADATIONS)} (degradation=NAME)")
    cls = DEGRADATIONS[kind]
    typed = merged(cls.schema(), values, KEY)
    return cls(scale, **{f.name: getattr(typed, f.name) for f in fields(typed) if f.name != "kind"})


def check_degradation(cfg) -> None:
    """``make_degradation``'s checks (a stage's ``data.degradation``, before the first stage trains)."""
    make_degradation(cfg, 1)
