"""Inference engines: what ``auto`` chooses on CPUs with and without native bf16, and that the ONNX engines give
torch fp32's result at odd sizes (generator tiles, segmenter logits, predict end to end)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sftgan_lit.config import ConfigError
from sftgan_lit.inference import engines
from sftgan_lit.inference.engines import GeneratorRunner, SegmenterRunner, choose
from sftgan_lit.inference.tiling import super_resolve
from sftgan_lit.models import OutdoorSceneSeg, SFTGenerator
from sftgan_lit.priors import DenseProbs, SegmentOptions, segment_image

CPU = torch.device("cpu")
ONNX_ENGINES = [e for e in ("onnxruntime", "openvino") if engines.installed(e)]


@pytest.mark.parametrize(
    "flags,installed,expected",
    [
        ({"avx2", "amx_bf16", "amx_tile"}, {"onnxruntime"}, ("torch", "bf16")),
        ({"avx512f", "avx512_bf16"}, {"onnxruntime", "openvino"}, ("openvino", "bf16")),
        ({"avx2", "avx512f"}, {"onnxruntime"}, ("onnxruntime", "fp32")),
        ({"avx2"}, {"onnxruntime", "openvino"}, ("openvino", "fp32")),
        ({"avx2"}, set(), ("torch", "fp32")),
    ],
)
def test_auto_picks_bf16_only_where_the_cpu_runs_it_natively(monkeypatch, flags, installed, expected):
    monkeypatch.setattr(engines, "cpu_flags", lambda: set(flags))
    monkeypatch.setattr(engines, "installed", lambda e: e == "torch" or e in installed)
    choice = choose("auto", "auto", CPU)
    assert (choice.engine, choice.precision) == expected
    assert ("runs bf16 natively" in choice.why) == (expected[1] == "bf16")


def test_explicit_choices_that_cannot_run_are_configuration_errors(monkeypatch):
    monkeypatch.setattr(engines, "installed", lambda e: e in ("torch", "onnxruntime"))
    with pytest.raises(
        ConfigError, match=r"engine=openvino needs the 'engines' extra: pip install \"sftgan_lit\[engines\]\""
    ):
        choose("openvino", "fp32", CPU)
    with pytest.raises(ConfigError, match="engine=onnxruntime runs fp32 on the CPU; got precision=bf16"):
        choose("onnxruntime", "bf16", CPU)
    assert choose("torch", "fp16", CPU).precision == "fp16"  # explicit choices are kept
    assert choose("onnxruntime", "auto", CPU).precision == "fp32"  # what the engine runs


def _generator() -> SFTGenerator:
    torch.manual_seed(0)
    g = SFTGenerator(num_features=8, num_blocks=2, cond_channels=4, cond_hidden_channels=8, sft_hidden_channels=4)
    for p in g.CondNet.parameters():
        p.data.normal_(0, 0.3)
    return g.eval()


@pytest.mark.skipif(not engines.installed("openvino"), reason="openvino is not installed")
def test_openvino_bf16_stays_close_to_fp32():
    """bf16 is a precision choice (precision=bf16 / auto on CPUs with native bf16): close, not equal."""
    g = _generator()
    lr = torch.rand(1, 3, 21, 15, generator=torch.Generator().manual_seed(1))
    prior = DenseProbs(torch.softmax(torch.randn(8, 84, 60), 0), 4)
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        runner = GeneratorRunner(g, "openvino", Path(tmp), precision="bf16")
        a = super_resolve(g, lr, prior, tile=None, as_float=True)
        b = super_resolve(g, lr, prior, tile=None, as_float=True, runner=runner)
    assert 0 < np.abs(a - b).max() <= 2e-2


@pytest.mark.parametrize("engine", ONNX_ENGINES)
def test_onnx_generator_tiles_match_torch_fp32_at_odd_sizes(tmp_path, engine):
    g = _generator()
    runner = GeneratorRunner(g, engine, tmp_path)
    lr = torch.rand(1, 3, 23, 37, generator=torch.Generator().manual_seed(1))
    prior = DenseProbs(torch.softmax(torch.randn(8, 92, 148), 0), 4)
    a = super_resolve(g, lr, prior, tile=10, as_float=True)
    b = super_resolve(g, lr, prior, tile=10, as_float=True, runner=runner)
    assert np.abs(a - b).max() <= 1e-4
    assert len(list(tmp_path.glob("generator-*.onnx"))) == 1  # exported once, cached by the weights' hash
    GeneratorRunner(g, engine, tmp_path)
    assert len(list(tmp_path.glob("generator-*.onnx"))) == 1


@pytest.mark.parametrize("engine", ONNX_ENGINES)
def test_onnx_segmenter_matches_torch_fp32_at_odd_sizes_whole_and_tiled(tmp_path, engine):
    torch.manual_seed(2)
    seg = OutdoorSceneSeg(layers=(1, 1, 1, 1), base_width=8).eval()
    runner = SegmenterRunner(seg, engine, tmp_path)
    lr = torch.rand(1, 3, 19, 27, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(runner.coarse_logits(lr), seg.coarse_logits(lr), atol=1e-4, rtol=0)
        torch.testing.assert_close(runner(lr), seg(lr), atol=1e-5, rtol=0)
    for options in (SegmentOptions(), SegmentOptions(max_pixels=1000, tile=8, overlap=4)):
        a, _ = segment_image(seg, lr, options)
        b, _ = segment_image(runner, lr, options)
        torch.testing.assert_close(a.crop(0, 19, 0, 27), b.crop(0, 19, 0, 27), atol=1e-5, rtol=0)


@pytest.mark.parametrize("engine", ONNX_ENGINES)
def test_predict_on_an_onnx_engine_writes_what_torch_writes(tmp_path, engine):
    from sftgan_lit.data.io import read_image
    from sftgan_lit.inference import predict
    from sftgan_lit.models import export_generator

    from helpers import TINY_DATA, compose

    export_generator(_generator(), tmp_path / "g.pth")
    base = [f"checkpoint={tmp_path / 'g.pth'}", "images=demo", "input=hr", "prior=labels", "progress=false", "tile=20"]
    torch_run, _ = predict(
        compose([*base, f"out={tmp_path / 'a'}", "engine=torch", "precision=fp32", *TINY_DATA], "predict")
    )
    onnx_run, _ = predict(
        compose([*base, f"out={tmp_path / 'b'}", f"engine={engine}", "precision=auto", *TINY_DATA], "predict")
    )
    assert torch_run.ok and onnx_run.ok and len(onnx_run.written) == 2
    for a, b in zip(torch_run.written, onnx_run.written):
        assert np.abs(read_image(a).astype(int) - read_image(b).astype(int)).max() <= 1
