"""Priors: label maps -> probabilities, uniform, segmenter priors, validation, quantised storage."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from sftgan_lit.data.store import dequantize_probs, quantize_probs
from sftgan_lit.models import OutdoorSceneSeg
from sftgan_lit.priors import LabelPrior, PriorError, SegmenterPrior, UniformPrior, validate_probs
from sftgan_lit.train import build_models

from helpers import TINY_MODEL, compose, tiny_segmenter_file


def test_label_prior_one_hot_smoothing_and_void():
    labels = torch.tensor([[0, 3], [7, 255]], dtype=torch.uint8)
    p = LabelPrior().from_labels(labels)
    assert p.shape == (8, 2, 2)
    assert p[0, 0, 0] == 1 and p[3, 0, 1] == 1 and p[7, 1, 0] == 1
    torch.testing.assert_close(p[:, 1, 1], torch.full((8,), 1 / 8))  # void: no information
    eps = 0.2
    ps = LabelPrior(smoothing=eps).from_labels(labels)
    assert ps[3, 0, 1].item() == pytest.approx(1 - eps + eps / 8)
    assert ps[4, 0, 1].item() == pytest.approx(eps / 8)
    assert LabelPrior(void="background").from_labels(labels)[0, 1, 1] == 1


def test_label_prior_blur_softens_only_boundaries_and_keeps_rows_summing_to_one():
    labels = torch.zeros(40, 40, dtype=torch.uint8)
    labels[:, 20:] = 5
    p = LabelPrior(blur_sigma=1.5).from_labels(labels)
    torch.testing.assert_close(p.sum(0), torch.ones(40, 40))
    assert p[5, 10, 0] == pytest.approx(0, abs=1e-6) and p[5, 10, 39] == pytest.approx(1, abs=1e-6)
    # at the boundary the two classes share the mass like a Gaussian CDF: 0.5 halfway between columns
    assert p[5, 10, 19].item() == pytest.approx(1 - p[5, 10, 20].item(), abs=1e-5)
    assert 0.2 < p[5, 10, 20].item() < 0.9


def test_label_prior_rejects_out_of_range_labels():
    with pytest.raises(PriorError, match="outside"):
        LabelPrior().from_labels(torch.tensor([[9]]))


def test_prior_config_mismatch_names_the_problem():
    with pytest.raises(PriorError, match="num_classes=3 but 8 class_names"):
        UniformPrior("x", num_classes=3)


def test_quantised_probs_sum_to_255_and_stay_within_one_level():
    torch.manual_seed(0)
    probs = torch.distributions.Dirichlet(torch.full((8,), 0.3)).sample((17, 23)).permute(2, 0, 1)
    q = quantize_probs(probs)
    assert q.dtype.name == "uint8" and q.shape == (17, 23, 8)
    assert (q.sum(-1, dtype="int32") == 255).all()
    back = dequantize_probs(q)
    assert (back - probs).abs().max() <= 1 / 255 + 1e-6


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda p: p[:5], "5 classes"),
        (lambda p: p.index_fill(1, torch.tensor([0]), float("nan")), "non-finite"),
        (lambda p: p * 1.1, "sum to 1|outside"),
        (lambda p: p[:, :4], "does not match the image size"),
    ],
)
def test_validate_probs_rejects(make, match):
    p = torch.full((8, 6, 6), 1 / 8)
    validate_probs(p, 8, size=(6, 6))
    with pytest.raises(PriorError, match=match):
        validate_probs(make(p), 8, size=(6, 6))


def test_segmenter_prior_missing_weights_names_the_config_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="prior.weights"):
        SegmenterPrior(weights=None).from_lr(torch.rand(1, 3, 8, 8))
    with pytest.raises(FileNotFoundError, match=r"prior.weights=.*nope.pth: file not found"):
        SegmenterPrior(weights=str(tmp_path / "nope.pth")).from_lr(torch.rand(1, 3, 8, 8))


def test_segmenter_prior_matches_the_network_and_checks_class_count(tmp_path):
    arch = tiny_segmenter_file(tmp_path / "seg.pth")
    prior = SegmenterPrior(weights=str(tmp_path / "seg.pth"), arch=arch)
    lr = torch.rand(2, 3, 6, 10)
    p = prior.from_lr(lr)
    assert p.shape == (2, 8, 24, 40)
    net = OutdoorSceneSeg(layers=(1, 1, 1, 1), base_width=4)
    net.load_state_dict(torch.load(tmp_path / "seg.pth", weights_only=True))
    torch.testing.assert_close(p, net.eval()(lr))
    validate_probs(p, 8, size=(24, 40))
    tiny_segmenter_file(tmp_path / "seg5.pth", num_classes=5)
    with pytest.raises(PriorError, match="predicts 5 classes but prior=ade_outdoor declares 8"):
        SegmenterPrior(weights=str(tmp_path / "seg5.pth"), arch=arch).from_lr(lr)


@pytest.mark.parametrize("name", ["labels", "ade_outdoor", "uniform", "none"])
def test_prior_configs_instantiate_and_drive_the_class_count(name):
    cfg = compose(config_name="train", overrides=[f"prior={name}", *TINY_MODEL])
    prior = instantiate(cfg.prior)
    models = build_models(cfg, prior)
    assert prior.name == name and prior.num_classes == 8 == models["generator"].config.num_classes
    assert models["discriminator"].num_classes == prior.num_classes


class _Code:
    def __reduce__(self):
        return (print, ("this ran",))


@pytest.mark.parametrize("kind", ["garbage", "truncated", "code", "npy garbage"])
def test_a_prior_file_that_does_not_load_is_that_files_failure_without_a_hint_to_run_code(tmp_path, kind, capsys):
    """A garbage .pt or one carrying code once stopped the whole run, with torch's hint to pass weights_only=False."""
    import pickle

    from sftgan_lit.data.io import ImageError
    from sftgan_lit.data.readers import load_prior_file

    path = tmp_path / ("p.npy" if kind == "npy garbage" else "p.pt")
    if kind == "code":
        path.write_bytes(pickle.dumps(_Code()))
    elif kind == "truncated":
        torch.save(torch.rand(3, 4, 4), path)
        path.write_bytes(path.read_bytes()[:40])
    else:
        path.write_bytes(b"\x00not a file of tensors" * 3)
    with pytest.raises(ImageError, match=f"{path}: not a") as err:
        load_prior_file(path, 3, (4, 4))
    assert "weights_only=False" not in str(err.value) and "this ran" not in capsys.readouterr().out
