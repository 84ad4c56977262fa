"""TorchScript and ONNX exports of the two-input generator match the eager model at sizes not traced at."""

from __future__ import annotations

import pytest
import torch

from sftgan_lit.inference.export import export_onnx, export_torchscript

from helpers import (
    tiny_generator,
)


@pytest.mark.filterwarnings(r"ignore:`torch\.jit\.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("kw", [{}, {"conditioning": "none"}])
def test_torchscript_and_onnx_match_eager_at_new_sizes(tmp_path, kw):
    import onnxruntime as ort

    g = tiny_generator(blocks=2, **kw)
    ts = export_torchscript(g, tmp_path / "g.ts")
    onnx_path = export_onnx(g, tmp_path / "g.onnx")
    gen = torch.Generator().manual_seed(5)
    for n, h, w in [(1, 11, 29), (3, 20, 16)]:
        lr = torch.rand(n, 3, h, w, generator=gen)
        inputs = (lr,) if not g.uses_prior else (lr, torch.rand(n, 8, 4 * h, 4 * w, generator=gen).softmax(1))
        with torch.no_grad():
            ref = g(*inputs)
            out_ts = torch.jit.load(str(ts))(*inputs)
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        feeds = {i.name: x.numpy() for i, x in zip(session.get_inputs(), inputs)}
        out_onnx = torch.from_numpy(session.run(None, feeds)[0])
        assert out_ts.shape == out_onnx.shape == ref.shape == (n, 3, 4 * h, 4 * w)
        assert (out_ts - ref).abs().max() < 1e-4
        assert (out_onnx - ref).abs().max() < 1e-4
