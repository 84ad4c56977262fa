"""Structured configs (dataclasses) for Hydra's ConfigStore, where the package's configs live, and composing them.

Typed schemas for the groups and entry points whose values are plain numbers and choices, so that a
typo in a key or a wrong type fails when the config is composed, with Hydra's message, not in the
middle of a run. ``conf/loss/*.yaml``, ``conf/sft/*.yaml``, ``conf/data/*.yaml`` and ``conf/degradation/*.yaml`` start from
``schema_loss`` / ``schema_sft`` / ``schema_data`` / ``schema_<degradation>``; ``conf/predict.yaml`` and ``conf/eval.yaml`` from ``schema_predict`` / ``schema_eval``.
The schemas are registered by ``register_configs()``, which every entry point calls before composing
(``cli``, ``compose_config``); importing this module registers nothing.

The configs themselves are the repository's top-level ``conf/`` folder; a wheel carries a copy inside
the package (``sftgan_lit/conf``), so the installed console scripts work from any folder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Optional

from .choices import COMPILE_MODES, Conditioning, GanType, Layout, PixelType, StoreFormat


class ConfigError(ValueError):
    """A configuration value outside what the key allows; the message is one line: the key, its value, the range."""


def require(ok: bool, key: str, value, allowed: str) -> None:
    """A ``ConfigError`` ``"<key>=<value>: must be <allowed>"`` unless ``ok``: the one form every range check uses."""
    if not ok:
        raise ConfigError(f"{key}={value}: must be {allowed}")


def is_int(value) -> bool:
    """An integer (not a bool, which Python counts as one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def require_int(key: str, value, low: int, optional: bool = False) -> None:
    """``value`` an integer >= ``low`` (or None when ``optional``), else a ``ConfigError`` naming ``key``."""
    ok = (optional and value is None) or (is_int(value) and value >= low)
    require(ok, key, value, f"an integer >= {low}" + (" or null" if optional else ""))


@dataclass
class PerceptualSchema:
    _target_: str = "sftgan_lit.losses.PerceptualLoss"
    _partial_: bool = True  # built by the objective only when w_percep is non-zero
    layer: int = 34  # VGG19 features index: 34 = conv5_4 before its ReLU
    weights: Optional[str] = None  # None: torchvision's cache (vgg19-dcbb9e9d.pth)
    required: bool = True  # False: a missing file disables the term, with a warning
    random_weights: bool = False  # tests only


@dataclass
class LossSchema:
    """``loss=``: ``losses.SFTGANObjective``'s arguments (its keys live at ``module.objective``)."""

    _target_: str = "sftgan_lit.losses.SFTGANObjective"
    w_pix: float = 0.0
    pixel_type: PixelType = PixelType.l1
    w_percep: float = 1.0
    w_gan: float = 5e-3
    gan_type: GanType = GanType.vanilla
    w_cls: float = 1.0
    w_cls_g: Optional[float] = None  # None: w_gan (the original)
    w_gp: float = 10.0
    perceptual: PerceptualSchema = field(default_factory=PerceptualSchema)
    pixel_fallback: Optional[float] = None  # w_pix when the VGG19 weights are missing (None: no stand-in)


@dataclass
class SFTSchema:
    """``sft=``: where and how the prior enters the generator (its keys live at ``model.generator``)."""

    conditioning: Conditioning = Conditioning.sft
    num_cond_blocks: Optional[int] = None  # None: every block of the trunk; k: the first k
    cond_every: int = 1  # k: every k-th of those blocks (0, k, 2k, ...)
    final_cond: bool = True  # the conditioning layer before the trunk's last conv


@dataclass
class TrainerSchema:
    """``lightning.Trainer``'s arguments that the ``trainer`` group sets, typed so that ``trainer.max_steps=x``
    fails at composition, not after a stage has trained. Keys whose type Lightning overloads (``devices``:
    count, list or string; ``limit_*_batches`` / ``val_check_interval``: an int counts batches, a float is
    a fraction) are ``Any`` here and checked by ``check()`` before any stage starts."""

    _target_: str = "lightning.Trainer"
    accelerator: str = "cpu"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    sync_batchnorm: bool = False
    max_steps: int = 200
    max_epochs: Optional[int] = -1
    max_time: Optional[str] = None  # "DD:HH:MM:SS"
    val_check_interval: Any = None
    check_val_every_n_epoch: Optional[int] = 1
    limit_train_batches: Any = 1.0
    limit_val_batches: Any = 1.0
    num_sanity_val_steps: int = 0
    fast_dev_run: Any = False
    log_every_n_steps: int = 10
    deterministic: Any = False  # True, False or "warn"
    benchmark: Optional[bool] = None
    default_root_dir: Optional[str] = None
    enable_progress_bar: bool = True
    enable_checkpointing: Optional[bool] = None
    enable_model_summary: Optional[bool] = None
    detect_anomaly: bool = False
    profiler: Optional[str] = None
    use_distributed_sampler: bool = True
    plugins: Any = None  # e.g. [SLURMEnvironment] (conf/trainer/slurm.yaml)

    @staticmethod
    def check(trainer, key: str = "trainer") -> None:
        """The overloaded keys' values, or a ``ConfigError`` naming ``<key>.<name>`` and what it allows."""
        require(trainer.max_steps >= -1, f"{key}.max_steps", trainer.max_steps, "an integer >= -1 (-1: no limit)")
        require_int(f"{key}.num_nodes", trainer.num_nodes, 1)
        require_int(f"{key}.log_every_n_steps", trainer.log_every_n_steps, 1)
        require_int(f"{key}.check_val_every_n_epoch", trainer.check_val_every_n_epoch, 1, optional=True)
        devices = trainer.devices
        require(
            (is_int(devices) and devices >= -1 and devices != 0)
            or (
                isinstance(devices, str)
                and (devices == "auto" or all(d.strip().lstrip("-").isdigit() for d in devices.split(",") if d.strip()))
            )
            or (not isinstance(devices, str | int | float | bool) and all(is_int(d) and d >= 0 for d in devices)),
            f"{key}.devices",
            devices,
            "a count >= 1, -1 (all), 'auto', or a list of device indices",
        )
        for name in ("limit_train_batches", "limit_val_batches"):
            value = trainer[name]
            require(
                (is_int(value) and value >= 0) or (isinstance(value, float) and 0.0 <= value <= 1.0),
                f"{key}.{name}",
                value,
                "a number of batches (an integer >= 0) or a fraction in [0.0, 1.0]",
            )
        value = trainer.val_check_interval
        require(
            value is None or (is_int(value) and value >= 1) or (isinstance(value, float) and 0.0 < value <= 1.0),
            f"{key}.val_check_interval",
            value,
            "null, a number of steps (an integer >= 1) or a fraction of an epoch in (0.0, 1.0]",
        )
        value = trainer.fast_dev_run
        require(
            isinstance(value, bool) or (is_int(value) and value >= 0),
            f"{key}.fast_dev_run",
            value,
            "true, false or a number of batches",
        )


@dataclass
class DemoConfig:
    """The embedded demo set (``data.demo``, ``data/demo.py``): scenes generated on first use, no download."""

    seed: int = 0
    size: int = 192  # scene side in HR pixels (a multiple of 8)
    num_train: int = 48
    num_val: int = 8
    num_test: int = 8
    num_background: int = 8  # photograph-only images for the background mix of the training split
    # "outdoor": the 8 outdoor classes from skimage textures; "ambiguous": the prior ablation's scenes,
    # whose 4 classes are identical at LR (data/ambiguous.py); "context": the same classes in bands whose
    # order identifies them from the whole image only (the learned-prior pipeline)
    kind: str = "outdoor"


@dataclass
class BackgroundSchema:
    """The background-only images mixed into training at ``data.bg_ratio`` (prior all background, category 0)."""

    images: Optional[str] = None  # a folder of HR images (e.g. DIV2K_train_HR)


@dataclass
class SplitSchema:
    """One split (``data.train`` / ``data.val`` / ``data.test``): the keys of every layout. The layout's own
    class (``data.splits``) takes the keys it has and refuses, in one line, a key of another layout."""

    layout: Layout = Layout.folder  # demo | folder | ost | paired
    images: Optional[str] = None  # folder: the HR images
    labels: Optional[str] = None  # folder, ost, paired: parallel label maps (PNG, same stems)
    priors: Optional[str] = None  # folder, paired: parallel priors (.npy / .pt, (C, H, W) probabilities)
    root: Optional[str] = None  # ost: the folder with one subfolder per class
    hr: Optional[str] = None  # paired: the HR images
    lr: Optional[str] = None  # paired: the given LR images
    lr_suffix: Optional[str] = None  # paired: LR names are <HR stem><lr_suffix> (e.g. x4); null = ""
    background: Optional[BackgroundSchema] = None  # train, folder / ost: the background mix


@dataclass
class DataSchema:
    """``data.``: the ``SFTGANDataModule``'s arguments (``conf/data/*.yaml`` start from it), typed so that a
    typo or a wrong type fails at composition; the datamodule checks the ranges."""

    _target_: str = "sftgan_lit.data.SFTGANDataModule"
    _convert_: str = "all"  # plain dicts and lists reach the datamodule (and its worker processes)
    # A split's keys are SplitSchema's; the layout's class (data.splits) refuses a key of another layout in
    # one line. val, test, gpu_augment and storage_options are often null, and a mapping given on the command
    # line cannot be merged into a null typed node (omegaconf), so those are untyped here and checked when built.
    # degradation is typed by its own group (conf/degradation/, one schema per model: degradations.DEGRADATIONS).
    train: Optional[SplitSchema] = None  # the training split
    val: Any = None  # a split like train; null with a folder / ost training split: held out of it (val_holdout)
    test: Any = None  # a split like train
    demo: Optional[DemoConfig] = None  # the demo set's settings (layout: demo)
    degradation: Any = None  # the degradation group (degradation=bicubic | realesrgan); null: bicubic
    cache_dir: Optional[str] = None  # where the demo set is generated (null: $SFTGAN_CACHE or ~/.cache/sftgan_lit)
    store_root: Optional[str] = None  # prepared stores (null: next to the generated demo set)
    use_store: bool = True  # false: decode the source files every time
    prepare_missing: bool = True  # prepare missing stores (rank 0) instead of failing
    verify_store: bool = True  # check every entry's hash when a store is opened
    store_format: StoreFormat = StoreFormat.mmap  # mmap | litdata (stream chunks from stream_root)
    stream_root: Optional[str] = None  # litdata: a folder or s3://bucket/prefix (null: beside each store)
    stream_cache: Optional[str] = None  # litdata: where chunks of a remote stream are cached (null: LitData's)
    storage_options: Any = None  # litdata: object-storage options, e.g. {endpoint_url: ...} (untyped: see val)
    scale: Optional[int] = None  # SR factor (the LR is 1/scale of the HR); null: the network's (model.generator.scale)
    crop_size: int = 96  # HR training crop (a multiple of scale)
    scales: list[float] = field(default_factory=lambda: [1.0, 0.9, 0.8, 0.7, 0.6, 0.5])  # random source rescale
    hflip: bool = True  # random horizontal flips
    rotate: bool = True  # random vertical flips and transposes
    bg_ratio: float = 0.1  # share of background samples (the original: about one in ten)
    val_crop_size: Optional[int] = None  # null: whole validation images (cut to a multiple of 8 and of the scale)
    val_holdout: Any = 0.1  # data.val null: this fraction (float) or count (int) of the training images validates
    epoch_length: Optional[int] = None  # samples per epoch (random crops); null: one per image
    batch_size: int = 16
    val_batch_size: int = 4
    num_workers: int = 2
    pin_memory: bool = True
    persistent_workers: bool = True
    gpu_augment: Any = None  # kornia on the device: {hflip: 0.5, vflip: 0.0, rot90: true, crop: null}; null: none


@dataclass
class InferenceSchema:
    """Keys shared by ``predict.yaml`` and ``eval.yaml`` (see those files for what each does)."""

    prior: Any = None  # the prior group (conf/prior/)
    data: Any = None  # the data group: read for images=demo only
    paths: Any = None
    images: str = "???"
    demo_split: str = "test"
    labels: Optional[str] = None
    priors: Optional[str] = None
    tile: Optional[int] = 256
    segment_max_pixels: Optional[int] = 4_000_000
    segment_tile: int = 256
    segment_overlap: int = 64
    precision: str = "auto"
    engine: str = "auto"
    device: str = "auto"
    max_pixels: int = 64_000_000
    compile: bool = False  # torch.compile the generator (engine=torch; the first tiles pay the compile)
    compile_mode: str = "default"  # default | reduce-overhead | max-autotune

    def check(self) -> None:
        """Every numeric and choice key in range, or a ``ConfigError`` naming the key and what it allows."""
        require_int("tile", self.tile, 1, optional=True)
        require_int("segment_max_pixels", self.segment_max_pixels, 1, optional=True)
        require_int("segment_tile", self.segment_tile, 1)
        require_int("segment_overlap", self.segment_overlap, 0)
        require_int("max_pixels", self.max_pixels, 1)
        require(
            self.precision in ("auto", "fp32", "bf16", "fp16"),
            "precision",
            self.precision,
            "one of auto, fp32, bf16, fp16",
        )
        engines = ("auto", "torch", "onnxruntime", "openvino")
        require(self.engine in engines, "engine", self.engine, "one of " + ", ".join(engines))
        require(self.demo_split in ("train", "val", "test"), "demo_split", self.demo_split, "one of train, val, test")
        require(
            self.compile_mode in COMPILE_MODES, "compile_mode", self.compile_mode, "one of " + ", ".join(COMPILE_MODES)
        )


@dataclass
class PredictSchema(InferenceSchema):
    input: str = "lr"
    out: str = "outputs/predict"
    checkpoint: str = "latest"
    prior_override: Optional[str] = None
    prior_mask: Optional[str] = None
    prior_remap: Any = None  # {sky: water} or "sky:water,grass:plant"
    save_prior: bool = False
    overlap: Optional[int] = None
    batch_size: int = 4
    channels_last: bool = True
    overwrite: bool = False
    progress: bool = True
    strength: float = 1.0
    checkpoint_fidelity: Optional[str] = None
    strength_map: Optional[str] = None
    alpha: str = "bicubic"
    noise_level: Optional[float] = None  # the noise_sigma channel everywhere, 8-bit levels (a prior with it)
    noise_map: Optional[str] = None  # the noise_sigma channel per pixel: a grey PNG (0..white = the channel's range)

    def check(self) -> None:
        super().check()
        require(self.input in ("hr", "lr"), "input", self.input, "hr or lr")
        require(self.alpha in ("bicubic", "model"), "alpha", self.alpha, "bicubic or model")
        ok = isinstance(self.strength, int | float) and not isinstance(self.strength, bool) and 0 <= self.strength <= 1
        require(ok, "strength", self.strength, "a number in [0, 1] (0: the fidelity model, 1: the GAN model)")
        require_int("overlap", self.overlap, 0, optional=True)
        require_int("batch_size", self.batch_size, 1)
        level = self.noise_level
        ok = level is None or (
            isinstance(level, int | float) and not isinstance(level, bool) and math.isfinite(level) and level >= 0
        )
        require(ok, "noise_level", level, "a finite number of 8-bit levels >= 0 (the noise to remove)")
        require(
            level is None or self.noise_map is None, "noise_level", level, "unset when noise_map is given (one of them)"
        )


@dataclass
class EvalSchema(InferenceSchema):
    images: str = "demo"
    lr_images: Optional[str] = None
    checkpoints: list[str] = field(default_factory=lambda: ["latest"])
    compare_priors: list[str] = field(default_factory=lambda: ["prior", "uniform"])
    out: str = "outputs/eval"
    lpips_net: Optional[str] = "alex"
    metrics: Any = "auto"  # auto (each of lpips, dists, niqe, pi whose files are found) or a list of them
    lpips_weights: Optional[str] = None
    dists_weights: Optional[str] = None
    niqe_params: Optional[str] = None
    ma_model: Optional[str] = None
    benchmark: Any = None  # set5,set14,... (inference.benchmark_sets.SETS): evaluate those sets under benchmark_root
    benchmark_root: Optional[str] = None
    num_crops: int = 3
    crop_size: int = 192

    def check(self) -> None:
        from .metrics import OPTIONAL
        from .metrics.perceptual import BACKBONES

        super().check()
        require_int("num_crops", self.num_crops, 0)
        require_int("crop_size", self.crop_size, 1)
        require(self.lpips_net in (None, *BACKBONES), "lpips_net", self.lpips_net, f"{', '.join(BACKBONES)} or null")
        ok = self.metrics == "auto" or (
            isinstance(self.metrics, list | tuple) and set(map(str, self.metrics)) <= set(OPTIONAL)
        )
        require(ok, "metrics", self.metrics, f"auto or a list of {', '.join(OPTIONAL)}")
        require(
            len(self.compare_priors) > 0,
            "compare_priors",
            self.compare_priors,
            "a non-empty list (prior, uniform, override:<class>)",
        )
        if self.benchmark is not None:  # the set names are checked against the sets' table (benchmark_sets)
            require(bool(self.benchmark_root), "benchmark_root", self.benchmark_root, "the folder holding the sets")


GROUP_KEYS = ("prior", "data", "paths")  # config groups inside an inference config: instantiated, not copied


def options(cfg, schema: type[InferenceSchema]) -> InferenceSchema:
    """The plain keys of a composed predict/eval config as its typed schema object (group nodes left out:
    they are read from ``cfg`` where needed, so interpolations inside them are never resolved here)."""
    from omegaconf import OmegaConf

    values = {f.name: cfg[f.name] for f in fields(schema) if f.name not in GROUP_KEYS}
    plain = {k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v for k, v in values.items()}
    opts = schema(**plain)
    opts.check()
    return opts


def register_configs() -> None:
    """Put the schemas into Hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    # groups placed where their keys are used (their files' @package headers say the same)
    cs.store(group="loss", name="schema_loss", node=LossSchema, package="module.objective")
    cs.store(group="sft", name="schema_sft", node=SFTSchema, package="model.generator")
    cs.store(group="trainer", name="schema_trainer", node=TrainerSchema)
    cs.store(group="data", name="schema_data", node=DataSchema)
    from .degradations import DEGRADATIONS

    for name, cls in DEGRADATIONS.items():
        cs.store(group="degradation", name=f"schema_{name}", node=cls.schema, package="data.degradation")
    cs.store(name="schema_predict", node=PredictSchema)
    cs.store(name="schema_eval", node=EvalSchema)


def conf_dir() -> Path:
    """The package's config folder: inside an installed wheel, else the source checkout's top-level ``conf/``."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parents[1] / "conf"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        f"sftgan_lit's configs are neither in {here / 'conf'} (a wheel) nor in {here.parents[1] / 'conf'} "
        "(a source checkout); reinstall the package"
    )


def compose_config(config_name: str, overrides: list[str] | tuple[str, ...] = ()):
    """Compose ``conf/<config_name>.yaml`` with Hydra ``overrides`` outside ``@hydra.main`` (tests, notebooks).

    Args:
        config_name: a root config of ``conf/``: ``train``, ``predict``, ``eval`` or ``prepare``.
        overrides: Hydra overrides, as on the command line (``["trainer.max_steps=8", "prior=uniform"]``).

    Returns:
        The composed ``DictConfig`` (without the ``hydra`` node; Hydra's record of the run is set as
        ``@hydra.main`` sets it, so the command line wins over every stage as it does there).
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(conf_dir())):
        cfg = compose(config_name=config_name, overrides=list(overrides), return_hydra_config=True)
    # as @hydra.main does: Hydra's record of the run (overrides, group choices) for train.pinned_keys
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def merged(default, value, key: str):
    """A dataclass config ``default`` with ``value`` (a mapping, a ``DictConfig``, a dataclass or None) on top,
    recursively for nested dataclass sections; a key the dataclass does not have is a ``ConfigError`` naming
    ``<key>.<name>`` and the keys it has."""
    from omegaconf import DictConfig, OmegaConf

    if value is None:
        return default
    if is_dataclass(value):
        return value
    if isinstance(value, DictConfig):
        value = OmegaConf.to_container(value, resolve=True)
    names = {f.name for f in fields(default)}
    out = {}
    for name, v in value.items():
        if name not in names:
            raise ConfigError(f"{key}.{name}: not a key here (the keys: {', '.join(sorted(names))})")
        current = getattr(default, name)
        out[name] = merged(current, v, f"{key}.{name}") if is_dataclass(current) else v
    return replace(default, **out)
