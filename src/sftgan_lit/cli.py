"""Console scripts: ``sftgan-train``, ``-predict``, ``-eval``, ``-prepare`` (Hydra), ``-export``, ``-inspect``.

The Hydra scripts read the package's configs (``config.conf_dir()``: inside the wheel, or the source
checkout's ``conf/``), registering the typed schemas first. Your own config folders join Hydra's
search path: ``sftgan-train hydra.searchpath=[file:///path/to/my_conf] experiment=mine`` (or
``--config-dir /path/to/my_conf``), where ``my_conf/experiment/mine.yaml`` composes with ours.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def _hydra_main(prog: str, config_name: str):
    """``hydra.main`` on the package's configs, with the schemas registered; a command line that does not
    compose (a typo in a key, ``tile=abc``, an unknown group option) exits 2 with one line first."""
    import hydra

    from .config import conf_dir, register_configs

    register_configs()
    try:
        folder = conf_dir()
    except FileNotFoundError as err:
        sys.exit(f"{prog}: {err}")
    composition_check(prog, config_name, sys.argv[1:])
    return hydra.main(version_base="1.3", config_path=str(folder), config_name=config_name)


def composition_error(err: BaseException) -> str:
    """One line from Hydra's composition error and the omegaconf error under it (the key, the value, why)."""
    parts: list[str] = []
    while err is not None:
        text = str(err).split("Config search path:")[0]  # Hydra's search path dump: not the user's mistake
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        lines = [ln for ln in lines if not ln.startswith(("full_key:", "object_type=", "reference_type="))]
        for line in lines:
            if parts and parts[-1].endswith(":"):  # "Available options in 'prior':" then one option per line
                parts[-1] += " " + line
            elif parts and parts[-1].startswith("Available options") and not line.endswith(":"):
                parts[-1] += ", " + line
            elif line not in parts:
                parts.append(line)
        err = err.__cause__
    return "; ".join(parts)


def composition_check(prog: str, config_name: str, argv: list[str]) -> None:
    """Compose ``config_name`` with the command line's overrides before Hydra runs, so that an override which
    does not fit the typed schema exits 2 with one line (Hydra itself prints a block and exits 1).

    Command lines with Hydra's own options (``-m``, ``--config-dir``, ``hydra.*``) are left to Hydra: they
    can change the search path or sweep, which a plain compose does not see."""
    _RUN_LOG.clear()  # a record is this command's alone: none is left from an earlier one in this process
    for arg in argv:  # the folder Hydra will write into, given on the command line
        if arg.startswith("hydra.run.dir=") and "${" not in arg and "://" not in arg:
            _exit_2_if(prog, folder_problem("hydra.run.dir", arg.split("=", 1)[1]))
    if any(arg.startswith("-") or arg.lstrip("+~").startswith("hydra.") for arg in argv):
        return
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from .config import compose_config

    try:
        cfg = compose_config(config_name, argv)
    except (HydraException, OmegaConfBaseException) as err:
        print(f"{prog}: {composition_error(err)}", file=sys.stderr)
        sys.exit(2)
    prior = cfg.get("prior")
    if prior is not None and "_target_" not in prior:  # a mixin alone (prior=degradation): it stacks onto classes
        print(
            f"{prog}: prior: {', '.join(sorted(prior)) or 'nothing'} but no categorical prior to stack onto; choose "
            "one first, e.g. prior=[labels,degradation] or prior=[uniform,degradation]",
            file=sys.stderr,
        )
        sys.exit(2)
    if config_name in ("predict", "eval") and isinstance(cfg.get("out"), str):  # outputs and log (hydra.run.dir)
        from pathlib import Path

        out = Path(cfg.out).expanduser()
        log = out / f"{config_name}.log"
        _RUN_LOG.update(
            prog=prog, path=log, size=log.stat().st_size if log.is_file() else None, made_dir=not out.exists()
        )
        _exit_2_if(prog, folder_problem("out", cfg.out))


# The log file Hydra opens in a predict / eval run's out folder, as it was before the run, and the command
# that recorded it: that command, refused for its configuration, takes its lines back out (or the file, or
# the folder it made), so that a refused run leaves nothing in a folder it was refused for (out= may be the
# input folder). Another command in the same process never touches it.
_RUN_LOG: dict = {}


def _undo_run_log(prog: str) -> None:
    import logging

    if _RUN_LOG.get("prog") != prog:
        return
    record = dict(_RUN_LOG)
    _RUN_LOG.clear()  # undone once
    path = record["path"]
    for logger in (logging.getLogger(), *(logging.getLogger(n) for n in logging.root.manager.loggerDict)):
        for handler in list(getattr(logger, "handlers", [])):
            if isinstance(handler, logging.FileHandler) and handler.baseFilename == str(path.resolve()):
                logger.removeHandler(handler)
                handler.close()
    if record["size"] is None:
        path.unlink(missing_ok=True)
        if record["made_dir"] and path.parent.is_dir() and not any(path.parent.iterdir()):
            path.parent.rmdir()
    elif path.is_file():
        with open(path, "r+b") as f:
            f.truncate(record["size"])


def _exit_2_if(prog: str, message: str | None) -> None:
    if message:
        print(f"{prog}: {message}", file=sys.stderr)
        sys.exit(2)


def folder_problem(key: str, value: str) -> str | None:
    """None when ``value`` is a folder this run can write into, made if missing (Hydra makes it next anyway);
    else the one line naming ``key`` and why (Hydra's own failure is a traceback)."""
    import os
    from pathlib import Path

    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        reason = "it is an existing file, not a folder"
    else:
        try:
            path.mkdir(parents=True, exist_ok=True)
            reason = None if os.access(path, os.W_OK) else "the folder is not writable"
        except OSError as err:
            reason = f"cannot make the folder ({err.strerror or err})"
    return f"{key}={value}: {reason}; choose another folder" if reason else None


def configuration_error(err: BaseException) -> str | None:
    """The one-line message of a configuration error, or None for any other exception.

    Ours are ``ValueError`` (with ``ConfigError``, ``CheckpointError``, ``PriorError``, ``ImageError``) or a
    missing file; a key left ``???`` is omegaconf's ``MissingMandatoryValue``; Hydra's ``instantiate``
    wraps a constructor's error, whose cause is the message to show (with the node's key when the
    constructor refused its arguments: a ``TypeError`` or Lightning's ``MisconfigurationException``).
    """
    from hydra.errors import InstantiationException
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from omegaconf.errors import MissingMandatoryValue

    node = None
    while isinstance(err, InstantiationException) and err.__cause__ is not None:
        node = node or next((ln.split(":", 1)[1].strip() for ln in str(err).splitlines() if "full_key:" in ln), None)
        err = err.__cause__
    if node and isinstance(err, TypeError | MisconfigurationException):
        # a constructor refusing its arguments (e.g. Lightning's Trainer): the config node is the place to fix
        return f"{node}: {str(err).strip().splitlines()[0]}"
    if isinstance(err, MissingMandatoryValue):
        key = getattr(err, "full_key", None) or str(err).split("full_key:")[-1].split()[0]
        return f"{key} is required (it is ??? in the config): set {key}=..."
    if isinstance(err, ValueError | FileNotFoundError):
        return "; ".join(line.strip() for line in str(err).splitlines() if line.strip())
    return None


def _setup_errors_exit(prog: str, fn, *args):
    """Run ``fn(*args)``; a configuration error (``configuration_error``) exits 2 with one line instead of a
    traceback, an operating-system error (a full disk, a folder it may not write) exits 1 with one line.
    ``HYDRA_FULL_ERROR=1`` keeps the traceback."""
    import os

    try:
        return fn(*args)
    except Exception as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        message = configuration_error(err)
        if message is None and isinstance(err, OSError):  # e.g. a full disk while writing a report: exit 1
            where = f"{err.filename}: " if err.filename else ""
            print(f"{prog}: {where}{err.strerror or err}", file=sys.stderr)
            sys.exit(1)
        if message is None:
            raise
        _undo_run_log(prog)
        print(f"{prog}: {message}", file=sys.stderr)
        sys.exit(2)


def train_main() -> None:
    """``sftgan-train``: ``train.py`` with the package's bundled ``conf/`` (Hydra overrides as arguments)."""
    from omegaconf import DictConfig

    from .train import train

    # hparams_search=loss_weights loads Hydra's Optuna sweeper plugin, the 'sweep' extra
    if any(a.lstrip("+").startswith("hparams_search=") and not a.endswith("=null") for a in sys.argv[1:]):
        if _missing_extra("sftgan-train", "hydra_plugins.hydra_optuna_sweeper", "hparams_search"):
            sys.exit(2)

    @_hydra_main("sftgan-train", "train")
    def _main(cfg: DictConfig) -> float | None:
        metrics, objects = _setup_errors_exit("sftgan-train", train, cfg)
        report_hook(cfg, metrics, objects)
        # the return value is what Hydra sweepers (Optuna) optimise
        key = cfg.get("optimized_metric")
        if key and key not in metrics:
            logging.getLogger("sftgan_lit.train").warning(
                "optimized_metric=%s was not logged (available: %s)", key, sorted(metrics)
            )
        return metrics.get(key) if key else None

    _main()


def _missing_extra(prog: str, module: str, feature: str) -> bool:
    """Print one line naming the extra when ``module`` (for ``feature``) is not installed; True then."""
    from .extras import MissingExtraError, require

    try:
        require(module, feature)
    except MissingExtraError as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return True
    return False


def report_hook(cfg, metrics: dict, objects: dict):
    """``cfg.report`` (a ``_partial_`` callable) on the trained run, once (rank 0), when the run exported
    its models; returns what it returns (None when there is no report)."""
    from hydra.utils import instantiate

    if not cfg.get("report") or not objects.get("exports") or not objects["trainer"].is_global_zero:
        return None
    return instantiate(cfg.report)(cfg=cfg, metrics=metrics, objects=objects)


def prepare_main() -> None:
    """``sftgan-prepare``: Hydra overrides as arguments (``conf/prepare.yaml``); exit code 1 if any file failed."""

    @_hydra_main("sftgan-prepare", "prepare")
    def _main(cfg) -> None:
        from .data.prepare import prepare_from_config

        code = _setup_errors_exit("sftgan-prepare", prepare_from_config, cfg)
        if code:
            sys.exit(code)

    _main()


def predict_main() -> None:
    """``sftgan-predict``: Hydra overrides as arguments (``conf/predict.yaml``); exit code 1 if any file
    failed, 2 on a configuration error (missing checkpoint, unknown class, no inputs)."""
    from .inference.predict import predict

    @_hydra_main("sftgan-predict", "predict")
    def _main(cfg) -> None:
        import signal

        received = []

        def terminate(signum, _frame):  # SIGTERM stops like Ctrl-C: temporary files removed, summary printed
            received.append(signum)
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, terminate)
        try:
            report, _ = _setup_errors_exit("sftgan-predict", predict, cfg)
        except KeyboardInterrupt:  # before the first image: nothing was written
            print("sftgan-predict: interrupted before any output was written", file=sys.stderr)
            sys.exit(128 + signal.SIGTERM if received else 130)
        code = 128 + signal.SIGTERM if received else 130
        print(
            f"sftgan-predict: {len(report.written)} written to {cfg.out}, {len(report.exists)} already there, "
            f"{len(report.failures)} failed, {len(report.skipped)} skipped (no image read here), "
            f"{len(report.not_done)} not processed, {report.seconds:.1f} s"
        )
        for name, reason in report.failures.items():
            print(f"sftgan-predict: FAILED {name}: {reason}", file=sys.stderr)
        for name, reason in report.skipped.items():
            print(f"sftgan-predict: SKIPPED {name}: {reason}", file=sys.stderr)
        if report.stopped:
            print(
                f"sftgan-predict: STOPPED: {report.stopped}; not processed: "
                f"{', '.join(p.name for p in report.not_done[:5])}{' ...' if len(report.not_done) > 5 else ''}",
                file=sys.stderr,
            )
        if report.interrupted:
            sys.exit(code)
        if not report.ok:
            sys.exit(1)

    _main()


def sets_as_one_list(argv: list[str]) -> list[str]:
    """``benchmark=set5,set14`` (the sets of one report, as papers write it) as the list it means, ``benchmark=[set5,
    set14]``; Hydra would read it as a sweep. Every other argument is left as it is."""
    return [
        f"benchmark=[{a.split('=', 1)[1]}]" if a.startswith("benchmark=") and "," in a and "[" not in a else a
        for a in argv
    ]


def eval_main() -> None:
    """``sftgan-eval``: Hydra overrides as arguments (``conf/eval.yaml``); exit code 1 if any file
    failed, 2 on a configuration error."""
    from .inference.evaluate import evaluate

    sys.argv[1:] = sets_as_one_list(sys.argv[1:])

    @_hydra_main("sftgan-eval", "eval")
    def _main(cfg) -> None:
        try:
            result, _ = _setup_errors_exit("sftgan-eval", evaluate, cfg)
        except KeyboardInterrupt:  # the report is written at the end: nothing of this run is on disk
            print("sftgan-eval: interrupted (Ctrl-C); no report was written", file=sys.stderr)
            sys.exit(130)
        print((Path(cfg.out) / "summary.md").read_text())
        print(f"sftgan-eval: report in {cfg.out} ({result['seconds']:.1f} s)")
        for name, reason in result["failures"].items():
            print(f"sftgan-eval: FAILED {name}: {reason}", file=sys.stderr)
        for name, reason in result["skipped"].items():
            print(f"sftgan-eval: SKIPPED {name}: {reason}", file=sys.stderr)
        if result["failures"] or result["skipped"]:
            sys.exit(1)

    _main()


def export_main(argv: list[str] | None = None) -> int:
    """``sftgan-export CHECKPOINT --out DIR``: one-file models for other tools (the prior and the generator as
    one pipeline: safetensors, ONNX fp32/fp16; the two-input generator: TorchScript, ONNX), each checked
    against the eager model at a size it was not traced at, and a model card (JSON + README.md)."""
    from .inference.exporters import EXPORTERS
    from .inference.model_card import model_card, write_model_card
    from .pipeline import load_pipeline

    parser = argparse.ArgumentParser(prog="sftgan-export", description=export_main.__doc__)
    parser.add_argument(
        "checkpoint",
        help="a pipeline or generator file (.safetensors/.pth), a Lightning .ckpt, or a released SFTGAN generator",
    )
    parser.add_argument("--out", default="exported", help="output folder (default: exported/)")
    parser.add_argument("--name", help="file stem and model name (default: the checkpoint's stem)")
    parser.add_argument(
        "--prior", default="uniform", help="for a generator-only file: 'uniform' or a segmenter file (default uniform)"
    )
    parser.add_argument("--override", help="fixed edit: every pixel this class")
    parser.add_argument("--remap", help="fixed edit: source:target[,source:target]")
    parser.add_argument(
        "--estimator", help="for a generator with continuous channels: a degradation estimator file (blind use)"
    )
    parser.add_argument(
        "--continuous",
        nargs="+",
        default=[],
        metavar="NAME=VALUE",
        help="fixed continuous channels, in their units, e.g. noise_sigma=10 (they win over the estimator)",
    )
    parser.add_argument("--format", nargs="+", choices=list(EXPORTERS), default=["safetensors", "onnx", "onnx-fp16"])
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    parser.add_argument(
        "--tolerance", type=float, default=1e-4, help="max |export - eager| accepted, fp32 (default 1e-4)"
    )
    parser.add_argument("--fp16-tolerance", type=float, default=5e-2, help="the same for fp16 ONNX (default 5e-2)")
    parser.add_argument("--author", default="unknown")
    parser.add_argument("--license", default="unknown")
    parser.add_argument("--dataset", default="unknown")
    args = parser.parse_args(argv)
    from .state_dict import CheckpointError

    for fmt in args.format:  # each format's optional packages, before any work
        if any(_missing_extra("sftgan-export", m, f"--format {fmt}") for m in EXPORTERS[fmt].modules):
            return 2
    if args.name is not None and (not args.name or args.name in (".", "..") or any(c in args.name for c in "/\\")):
        print(
            f"sftgan-export: --name={args.name}: must be a file stem (no path separator, not . or ..)", file=sys.stderr
        )
        return 2
    for key in ("tolerance", "fp16_tolerance"):
        if not getattr(args, key) > 0:
            print(f"sftgan-export: --{key.replace('_', '-')}={getattr(args, key)}: must be > 0", file=sys.stderr)
            return 2
    segmenter = None if args.prior == "uniform" else args.prior
    continuous = {}
    for item in args.continuous:
        name, _, value = item.partition("=")
        try:
            continuous[name] = float(value)
        except ValueError:
            print(f"sftgan-export: --continuous {item}: expected NAME=NUMBER, e.g. noise_sigma=10", file=sys.stderr)
            return 2
    try:
        pipeline = load_pipeline(
            args.checkpoint, segmenter, args.override, args.remap, args.estimator, continuous or None
        )
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        print(f"sftgan-export: {err}", file=sys.stderr)
        return 2
    problem = folder_problem("--out", args.out)
    if problem:
        print(f"sftgan-export: {problem}", file=sys.stderr)
        return 2
    out, stem = Path(args.out), args.name or Path(args.checkpoint).stem
    paths = {fmt: out / f"{stem}{EXPORTERS[fmt].suffix}" for fmt in args.format}
    source = Path(args.checkpoint).resolve()
    if any(p.resolve() == source for p in paths.values()):
        print(
            f"sftgan-export: an output would overwrite {args.checkpoint}; choose another --out or --name",
            file=sys.stderr,
        )
        return 2
    failed, written = False, []
    for fmt, path in paths.items():
        exporter = EXPORTERS[fmt]
        limit = args.fp16_tolerance if exporter.fp16 else args.tolerance
        path = exporter.write(pipeline, path, args.opset)
        diff, note = exporter.check(pipeline, path)
        written.append(path)
        print(f"sftgan-export: {path} ({note}; max |export - eager| = {diff:.2e} at a size it was not traced at)")
        if diff > limit:
            print(f"sftgan-export: {path}: difference {diff:.2e} exceeds the tolerance {limit}", file=sys.stderr)
            failed = True
    card = model_card(pipeline, written, stem, args.author, args.license, args.dataset)
    for path in write_model_card(card, out, stem):
        print(f"sftgan-export: {path}")
    return 1 if failed else 0


def inspect_main(argv: list[str] | None = None) -> int:
    """``sftgan-inspect CKPT``: what a generator checkpoint holds (variant, config, parameter count)."""
    from .models import load_generator
    from .state_dict import CheckpointError

    parser = argparse.ArgumentParser(prog="sftgan-inspect", description=inspect_main.__doc__)
    parser.add_argument("checkpoint", type=Path)
    args = parser.parse_args(argv)
    try:
        g = load_generator(args.checkpoint)
    except (CheckpointError, FileNotFoundError) as err:
        print(f"sftgan-inspect: {err}", file=sys.stderr)
        return 1
    info = {
        "checkpoint": str(args.checkpoint),
        "parameters": sum(p.numel() for p in g.parameters()),
        "config": g.config_dict(),
    }
    print(json.dumps(info, indent=2))
    return 0


def app_main(argv: list[str] | None = None) -> int:
    """``sftgan-app``: paint the prior in a browser (Gradio), on 127.0.0.1 unless told otherwise; prints its URL."""
    parser = argparse.ArgumentParser(prog="sftgan-app", description=app_main.__doc__)
    parser.add_argument(
        "--checkpoint", default="latest", help="generator or pipeline file; latest = newest train.py export"
    )
    parser.add_argument(
        "--checkpoint-fidelity",
        help="the fidelity end of the texture strength (default: generator_fidelity.pth beside it)",
    )
    parser.add_argument("--segmenter", help="a segmenter file (experiment=segmenter): the 'segmenter' prior source")
    parser.add_argument(
        "--estimator",
        help="a degradation estimator file (experiment=degradation_estimator): the continuous channels of each image",
    )
    parser.add_argument(
        "--segmenter-engine",
        default="auto",
        choices=["auto", "torch", "onnxruntime", "openvino"],
        help="engine of the segmenter prior (auto: OpenVINO, bf16 where native); the generator runs torch fp32",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="port (0 = a free one; default 7860)")
    parser.add_argument(
        "--auth", default=None, help="USER:PASS asked by the page (Gradio's login); set it when --host is not local"
    )
    parser.add_argument("--max-sessions", type=int, default=8, help="browser sessions kept in memory (default 8)")
    parser.add_argument("--max-lr-pixels", type=int, default=256 * 256, help="largest LR accepted (default 256x256)")
    parser.add_argument("--max-pixels", type=int, default=64_000_000, help="decompression-bomb guard per upload")
    parser.add_argument("--demo-split", default="test", choices=["train", "val", "test"], help="demo scenes offered")
    args = parser.parse_args(argv)
    checks = {
        "port": 0 <= args.port <= 65535,
        "max_sessions": args.max_sessions >= 1,
        "max_lr_pixels": args.max_lr_pixels >= 1,
        "max_pixels": args.max_pixels >= 1,
    }
    for key, ok in checks.items():
        if not ok:
            print(f"sftgan-app: --{key.replace('_', '-')}={getattr(args, key)}: out of range", file=sys.stderr)
            return 2
    auth = None
    if args.auth is not None:
        user, sep, password = args.auth.partition(":")
        if not (sep and user and password):
            print(f"sftgan-app: --auth={args.auth}: must be USER:PASS, both non-empty", file=sys.stderr)
            return 2
        auth = (user, password)
    problem = listen_problem(args.host, args.port)
    if problem:
        print(f"sftgan-app: --host={args.host} --port={args.port}: {problem}", file=sys.stderr)
        return 2
    if args.host not in ("127.0.0.1", "localhost", "::1") and auth is None:
        print(
            f"sftgan-app: warning: --host={args.host} serves the page to other machines without a login; "
            "anyone who reaches it can upload and run images: add --auth USER:PASS",
            file=sys.stderr,
        )
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if _missing_extra("sftgan-app", "gradio", "sftgan-app"):
        return 2
    from .app.ui import PainterApp, load_models, serve

    models = _setup_errors_exit(
        "sftgan-app",
        load_models,
        args.checkpoint,
        args.checkpoint_fidelity,
        args.segmenter,
        args.max_lr_pixels,
        args.max_pixels,
        args.segmenter_engine,
        args.estimator,
    )
    app = PainterApp(models, args.max_sessions, args.demo_split)
    serve(app, args.host, args.port, auth=auth)
    return 0


def listen_problem(host: str, port: int) -> str | None:
    """Why the app could not listen on ``host:port`` (in use, not an address of this machine), or None."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port or None, type=socket.SOCK_STREAM)
    except OSError as err:
        return f"not an address to listen on ({err.strerror or err})"
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind(address)
        except OSError as err:
            return f"cannot listen there ({err.strerror or err}); choose another port, or --port 0 for a free one"
    return None
