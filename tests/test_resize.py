"""MATLAB-compatible imresize vs BasicSR's reference port, on real photographs."""

import numpy as np
import pytest
import torch

from srarena.harness.degradations.resize import imresize

TOL = 1e-5  # float [0,1]; measured max deviation ~2.5e-7 (BasicSR computes weights in float32)


def _ours(img: np.ndarray, scale: float) -> np.ndarray:
    x = torch.from_numpy(img.astype(np.float64) / 255.0).permute(2, 0, 1)
    return imresize(x, scale=scale).permute(1, 2, 0).numpy()


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee"])
@pytest.mark.parametrize("scale", [4, 8])
def test_downscale_matches_basicsr(basicsr, photos, name, scale):
    from basicsr.utils.matlab_functions import imresize as ref_imresize

    img = photos[name]  # chelsea is 300x451: odd sizes exercise the mirrored borders
    ref = ref_imresize(img.astype(np.float32) / 255.0, 1 / scale)
    ours = _ours(img, 1 / scale)
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() <= TOL


@pytest.mark.parametrize("name", ["astronaut", "chelsea"])
@pytest.mark.parametrize("scale", [4, 8])
def test_upscale_matches_basicsr(basicsr, photos, name, scale):
    from basicsr.utils.matlab_functions import imresize as ref_imresize

    img = photos[name][:48, :61]  # small crop: upscaling x8 stays cheap
    ref = ref_imresize(img.astype(np.float32) / 255.0, scale)
    ours = _ours(img, scale)
    assert ours.shape == ref.shape == (48 * scale, 61 * scale, 3)
    assert np.abs(ours - ref).max() <= TOL


def test_batched_and_sized_calls_agree(photos):
    img = torch.from_numpy(photos["coffee"]).permute(2, 0, 1).double() / 255
    batch = torch.stack([img, img.flip(-1)])
    out = imresize(batch, scale=0.25)
    assert out.shape == (2, 3, 100, 150)
    assert torch.allclose(out[0], imresize(img, size=(100, 150)), atol=1e-12)
    assert torch.allclose(out[1], imresize(img.flip(-1), scale=0.25), atol=1e-12)


def test_constant_image_is_preserved():
    x = torch.full((1, 3, 37, 53), 0.3, dtype=torch.float64)
    assert torch.allclose(imresize(x, scale=1 / 4), torch.tensor(0.3, dtype=torch.float64))
    assert torch.allclose(imresize(x, scale=3), torch.tensor(0.3, dtype=torch.float64))


def test_bad_arguments():
    with pytest.raises(ValueError):
        imresize(torch.zeros(5), scale=2)
    with pytest.raises(ValueError):
        imresize(torch.zeros(1, 3, 8, 8))
