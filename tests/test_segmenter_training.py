"""experiment=segmenter and the learned prior: IoU/ECE against hand computations, class-count errors,
the exported segmenter as a prior (store validation, predict), the context scenes, the tiny pipeline."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from sftgan_lit.data.ambiguous import AMBIGUOUS_CLASSES, CONTEXT_ORDER, make_context_scene
from sftgan_lit.imresize import imresize
from sftgan_lit.lit import SegmenterModule
from sftgan_lit.models import LRASPPSegmenter, OutdoorSceneSeg, export_segmenter, load_segmenter
from sftgan_lit.priors import SegmenterPrior, UniformPrior
from sftgan_lit.priors.base import PriorError, validate_probs
from sftgan_lit.state_dict import CheckpointError

from helpers import compose

CLASSES = list(AMBIGUOUS_CLASSES)
COLORS = [[153, 153, 153], [230, 90, 60], [60, 160, 230], [120, 200, 90]]


def _compose(overrides, name="train"):
    return compose(config_name=name, overrides=overrides)


def test_iou_acc_and_ece_match_a_hand_computed_case():
    seg = LRASPPSegmenter(num_classes=3)
    abc = UniformPrior("abc", num_classes=3, class_names=["a", "b", "c"], colors=[[0, 0, 0]] * 3)
    module = SegmenterModule(seg, abc, optimizer=None)
    # 2x3 image; class c never occurs in the target; one void pixel
    target = torch.tensor([[[0, 0, 1], [1, 1, 255]]])
    probs = torch.tensor(
        [
            [[0.9, 0.6, 0.2], [0.3, 0.1, 0.5]],  # p(a)
            [[0.1, 0.3, 0.7], [0.6, 0.2, 0.5]],  # p(b)
            [[0.0, 0.1, 0.1], [0.1, 0.7, 0.0]],
        ]
    )[None]  # p(c)
    # argmax: a a b / b c (last pixel void)
    m = module.metrics["val"]
    m.update(probs, target)
    values = m.compute()
    # IoU a: pred {00,01}, target {00,01} -> 1; b: pred {02,10}, target {02,10,11} -> 2/3; c: pred {11}, target {} -> 0
    assert torch.allclose(values["iou"], torch.tensor([1.0, 2 / 3, 0.0]))
    assert values["acc"].item() == pytest.approx(4 / 5)
    # ECE (15 bins, L1): confidences 0.9 0.6 0.7 0.6 0.7 with correctness 1 1 1 1 0
    conf = np.array([0.9, 0.6, 0.7, 0.6, 0.7])
    correct = np.array([1, 1, 1, 1, 0])
    bins = np.minimum((conf * 15).astype(int), 14)
    ece = sum(abs(correct[bins == b].mean() - conf[bins == b].mean()) * (bins == b).mean() for b in np.unique(bins))
    assert values["ece"].item() == pytest.approx(ece, abs=1e-6)


def test_class_count_mismatch_fails_clearly(tmp_path):
    with pytest.raises(ValueError, match="predicts 8 classes but the prior has 4.*num_classes"):
        SegmenterModule(LRASPPSegmenter(num_classes=8), UniformPrior("four", 4, CLASSES, COLORS), optimizer=None)
    # A segmenter file used as a prior with another class set: the error names the key and both sets.
    path = tmp_path / "seg.pth"
    export_segmenter(LRASPPSegmenter(num_classes=4), path, CLASSES, COLORS)
    outdoor = SegmenterPrior(name="ade_outdoor", weights=str(path))  # 8 outdoor classes
    with pytest.raises(PriorError, match="prior.weights=.*predicts 4 classes but prior=ade_outdoor declares 8"):
        outdoor.check_ready()
    renamed = SegmenterPrior(
        name="x", weights=str(path), num_classes=4, class_names=["w", "x", "y", "z"], colors=COLORS
    )
    with pytest.raises(PriorError, match="trained on classes \\(flat, hstripes, vstripes, checker\\)"):
        renamed.check_ready()


def test_exported_segmenter_round_trips_and_refuses_other_architectures(tmp_path):
    torch.manual_seed(0)
    seg = LRASPPSegmenter(num_classes=4).eval()
    path = tmp_path / "seg.pth"
    export_segmenter(seg, path, CLASSES, COLORS)
    loaded = load_segmenter(path)
    assert isinstance(loaded, LRASPPSegmenter)
    lr = torch.rand(1, 3, 13, 21)
    with torch.no_grad():
        assert torch.equal(loaded(lr), seg(lr))
    # the checkpoint names its class by dotted path; anything outside the allowed set is refused
    obj = torch.load(path, weights_only=True)
    obj["sftgan_lit_segmenter"]["target"] = "os.system"
    torch.save(obj, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="must name one of"):
        load_segmenter(tmp_path / "evil.pth")


@pytest.mark.parametrize("cls", [LRASPPSegmenter, OutdoorSceneSeg])
def test_segmenter_interface_odd_sizes_and_coarse_decoding(cls):
    torch.manual_seed(0)
    kw = {"layers": (1, 1, 1, 1), "base_width": 8} if cls is OutdoorSceneSeg else {}
    seg = cls(num_classes=4, **kw).eval()
    lr = torch.rand(2, 3, 11, 17)
    with torch.no_grad():
        probs = seg(lr)
        logits = seg.logits(lr)
        coarse = seg.coarse_logits(lr)
        decoded = seg.decode_coarse(coarse)[..., :44, :68]
    assert probs.shape == logits.shape == (2, 4, 44, 68)
    assert torch.allclose(probs.sum(1), torch.ones(2, 44, 68), atol=1e-5)
    assert torch.allclose(probs, torch.softmax(logits, 1), atol=1e-6)
    assert torch.allclose(decoded, probs, atol=1e-6)


def test_lraspp_backbone_from_local_imagenet_file(tmp_path):
    from torchvision.models import mobilenet_v3_large

    torch.manual_seed(0)
    ref = mobilenet_v3_large(weights=None)
    torch.save(ref.state_dict(), tmp_path / "mnv3.pth")
    seg = LRASPPSegmenter(num_classes=4, backbone_weights=str(tmp_path / "mnv3.pth"))
    own = seg.backbone.state_dict()
    for key in ("0.0.weight", "16.0.weight"):
        assert torch.equal(own[key], ref.state_dict()[f"features.{key}"])
    torch.save({"x": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(CheckpointError, match="not a MobileNetV3-Large ImageNet checkpoint"):
        LRASPPSegmenter(num_classes=4, backbone_weights=str(tmp_path / "wrong.pth"))


def test_context_scenes_are_ambiguous_locally_and_ordered_globally():
    from sftgan_lit.data.ambiguous import BASE_PHOTOS
    from sftgan_lit.data.demo import _photo, _resize_photo

    photos = [_resize_photo(_photo(BASE_PHOTOS[0]), 128)]
    for seed in range(4):
        image, labels = make_context_scene(np.random.default_rng(seed), 128, photos)
        plain, same_labels = make_context_scene(np.random.default_rng(seed), 128, photos, amplitude=0.0)
        assert np.array_equal(labels, same_labels)
        # top-to-bottom order of the classes in every column is CONTEXT_ORDER
        for col in (0, 63, 127):
            runs = [int(v) for i, v in enumerate(labels[:, col]) if i == 0 or v != labels[i - 1, col]]
            assert runs == list(CONTEXT_ORDER)
        # the textures change the HR by tens of grey levels and the LR by a fraction of one (away from the border)
        to_t = lambda a: torch.from_numpy(a[..., 0].astype(np.float64))[None, None]  # noqa: E731
        hr_diff = (to_t(image) - to_t(plain)).abs()[..., 16:-16, 16:-16].mean()
        lr_diff = (imresize(to_t(image), 0.25) - imresize(to_t(plain), 0.25)).abs()[..., 4:-4, 4:-4].mean()
        assert hr_diff > 10 and lr_diff < 0.02 * hr_diff
        # neighbouring bands differ in brightness at LR: the boundaries are visible there
        lr = imresize(to_t(plain), 0.25)[0, 0]
        lab_lr = labels[2::4, 2::4]
        means = [float(lr[torch.from_numpy(lab_lr == c)].mean()) for c in CONTEXT_ORDER]
        assert min(abs(a - b) for a, b in zip(means, means[1:])) > 5


def test_prior_from_trained_segmenter_passes_store_validation_and_predicts(tmp_path):
    from sftgan_lit.inference import predict

    torch.manual_seed(0)
    path = tmp_path / "seg.pth"
    export_segmenter(LRASPPSegmenter(num_classes=4), path, CLASSES, COLORS)
    prior = SegmenterPrior(name="learned", weights=str(path), num_classes=4, class_names=CLASSES, colors=COLORS)
    lr = torch.rand(2, 3, 16, 12)
    probs = prior.from_lr(lr)
    validate_probs(probs, 4, (64, 48), source="learned prior")  # the store's check of cached priors
    assert prior.store_key.startswith("learned-") and len(prior.store_key) == len("learned-") + 12
    # a generator conditioned on 4 classes, run by predict.py with prior=learned
    from sftgan_lit.models import SFTGenerator, export_generator

    export_generator(
        SFTGenerator(
            num_classes=4, num_features=8, num_blocks=1, cond_channels=4, cond_hidden_channels=8, sft_hidden_channels=4
        ),
        tmp_path / "g.pth",
    )
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 52, 3), np.uint8)).save(tmp_path / "x.png")
    cfg = _compose(
        [
            f"images={tmp_path / 'x.png'}",
            "input=hr",
            "prior=learned",
            f"prior.weights={path}",
            f"checkpoint={tmp_path / 'g.pth'}",
            f"out={tmp_path / 'out'}",
            "progress=false",
            "save_prior=true",
        ],
        name="predict",
    )
    report, _ = predict(cfg)
    assert report.ok and (tmp_path / "out" / "x.png").is_file() and (tmp_path / "out" / "x_prior.png").is_file()
    # without weights: one configuration error before any file is read (exit code 2 in the CLI)
    cfg = _compose(
        [
            f"images={tmp_path / 'x.png'}",
            "prior=learned",
            f"checkpoint={tmp_path / 'g.pth'}",
            f"out={tmp_path / 'out2'}",
            "progress=false",
        ],
        name="predict",
    )
    with pytest.raises(FileNotFoundError, match="set prior.weights=.*experiment=segmenter"):
        predict(cfg)
    assert not (tmp_path / "out2").exists()


@pytest.mark.slow
def test_tiny_pipeline_end_to_end(tmp_path):
    from sftgan_lit.experiments.learned_prior import FAST_SEGMENTER, FAST_SR, run_pipeline

    results = run_pipeline(tmp_path, FAST_SEGMENTER, FAST_SR)
    seg_file = tmp_path / "segmenter" / "segmenter.pth"
    assert seg_file.is_file()
    assert 0.0 <= results["segmenter"]["test"]["test/miou"] <= 1.0
    assert set(results["sr"]) == {"learned", "labels", "none"}
    assert all(np.isfinite(r["psnr_y"]) for r in results["sr"].values())
    # the learned prior's SR run cached the segmenter's probabilities in a store keyed by its weights
    key = SegmenterPrior(
        name="learned", weights=str(seg_file), num_classes=4, class_names=CLASSES, colors=COLORS
    ).store_key
    assert list(Path(os.environ["SFTGAN_CACHE"]).rglob(f"train-{key}")), "no store of the learned prior's probabilities"
    assert (tmp_path / "report.md").read_text().count("|") > 10
    assert json.loads((tmp_path / "results.json").read_text())["predict"]
