"""Optional dependencies: what only one feature needs is an install extra (``pyproject.toml``), imported
where that feature starts. A missing one is a configuration error naming the extra to install."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from .config import ConfigError

#: the module a feature imports -> the extra of ``pyproject.toml`` that installs it (onnx, onnxscript and
#: onnxruntime are also in ``engines``, which exports the graphs it runs)
EXTRA_OF = {
    "gradio": "app",
    "openvino": "engines",
    "onnxruntime": "export",
    "onnx": "export",
    "onnxscript": "export",
    "spandrel": "ecosystem",
    "litdata": "stream",
    "hydra_plugins.hydra_optuna_sweeper": "sweep",
    "tensorboard": "tensorboard",
}


class MissingExtraError(ConfigError):
    """A feature was asked for whose extra is not installed (one line: the feature, the extra, the command)."""


def missing(module: str, feature: str, extra: str | None = None) -> MissingExtraError:
    """The error for ``feature`` without ``module``: one line naming the extra (``EXTRA_OF[module]`` unless given)."""
    extra = extra or EXTRA_OF[module]
    return MissingExtraError(f"{feature} needs the '{extra}' extra: pip install \"sftgan_lit[{extra}]\" (or [all])")


def require(module: str, feature: str, extra: str | None = None) -> ModuleType:
    """Import ``module`` for ``feature`` (the option that needs it, e.g. ``engine=openvino``).

    Args:
        module: a module listed in ``EXTRA_OF``.
        feature: what the user asked for, quoted in the error.
        extra: the extra to name (None: ``EXTRA_OF[module]``).

    Returns:
        The imported module; a ``MissingExtraError`` when it is not installed.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name is None or not module.startswith(err.name.split(".")[0]):
            raise  # something inside the module is broken: not a missing extra
        raise missing(module, feature, extra) from None


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    return importlib.util.find_spec(module.split(".")[0]) is not None
