"""Shared diffusion module: schedules, samplers checked against closed forms, Ho et al.'s U-Net."""

from __future__ import annotations

import math

import pytest
import torch

from srarena.methods.diffusion import DDPMUNet, UNetConfig, make_schedule, sample, timestep_sequence


def test_linear_schedule_matches_ho_et_al():
    s = make_schedule("linear", 1000)
    assert s.betas[0].item() == pytest.approx(1e-4) and s.betas[-1].item() == pytest.approx(0.02)
    assert s.alpha_bar[-1].item() == pytest.approx(4.04e-5, rel=0.02)  # x_T is almost pure noise


@pytest.mark.parametrize("name", ["linear", "cosine", "scaled_linear"])
def test_schedules_decrease_and_parameterisations_roundtrip(name):
    s = make_schedule(name, 200)
    ab = s.alpha_bar
    assert torch.all(ab[1:] < ab[:-1]) and 0 < ab[-1] < ab[0] < 1
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(4, 3, 5, 5, generator=g), torch.randn(4, 3, 5, 5, generator=g)
    t = torch.tensor([0, 50, 120, 160])  # not the last steps: x0 from eps is ill-posed at alpha_bar ~ 0
    xt = s.q_sample(x0, t, eps)
    for pred in ("eps", "x0", "v"):
        e, x = s.to_eps_x0(xt, t, s.target(x0, t, eps, pred), pred)
        torch.testing.assert_close(e, eps, atol=2e-4, rtol=0)
        torch.testing.assert_close(x, x0, atol=2e-4, rtol=0)
    with pytest.raises(ValueError, match="unknown noise schedule"):
        make_schedule("nope")


def test_timestep_sequences():
    assert timestep_sequence(10, None) == list(range(9, -1, -1))
    seq = timestep_sequence(1000, 50)
    assert len(seq) == 50 and seq[0] == 999 and seq[-1] == 0 and seq == sorted(seq, reverse=True)


def gaussian_oracle(schedule, mu: float, sd: float):
    """Exact E[eps | x_t] when x_0 ~ N(mu, sd^2) per pixel: the ideal denoiser."""

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ab = schedule.alpha_bar[t].float().view(-1, 1, 1, 1)
        return (1 - ab).sqrt() * (x - ab.sqrt() * mu) / (ab * sd**2 + 1 - ab)

    return denoise


@pytest.mark.parametrize("sampler, steps, eta", [("ddpm", None, None), ("ddim", None, 0.0)])
def test_full_chain_samplers_recover_a_gaussian_data_distribution(sampler, steps, eta):
    s = make_schedule("linear", 1000)
    mu, sd = 0.3, 0.2
    x = sample(gaussian_oracle(s, mu, sd), (2, 1, 64, 64), s, torch.Generator().manual_seed(0),
               sampler=sampler, steps=steps, eta=eta, clip_x0=False)
    assert x.mean().item() == pytest.approx(mu, abs=0.01)
    assert x.std().item() == pytest.approx(sd, rel=0.03)


@pytest.mark.parametrize("sampler, steps, eta", [("ddpm", 100, None), ("ddim", 50, 0.0), ("ddim", 50, 0.5)])
def test_respaced_samplers_are_close(sampler, steps, eta):
    # Fewer steps shrink the sample spread a little (discretisation of the reverse process).
    s = make_schedule("linear", 1000)
    mu, sd = 0.3, 0.5
    x = sample(gaussian_oracle(s, mu, sd), (2, 1, 64, 64), s, torch.Generator().manual_seed(0),
               sampler=sampler, steps=steps, eta=eta, clip_x0=False)
    assert x.mean().item() == pytest.approx(mu, abs=0.03)
    assert x.std().item() == pytest.approx(sd, rel=0.1)


def test_ddpm_is_ddim_with_eta_one_and_seeded():
    s = make_schedule("cosine", 100)
    den = gaussian_oracle(s, 0.0, 0.5)
    run = lambda name, eta, seed: sample(den, (1, 3, 8, 8), s, torch.Generator().manual_seed(seed),  # noqa: E731
                                         sampler=name, steps=20, eta=eta)
    torch.testing.assert_close(run("ddpm", None, 0), run("ddim", 1.0, 0))
    assert torch.equal(run("ddim", 0.3, 1), run("ddim", 0.3, 1))
    assert not torch.equal(run("ddim", 0.3, 1), run("ddim", 0.3, 2))
    with pytest.raises(ValueError, match="unknown sampler"):
        run("euler", None, 0)


def test_point_mass_is_recovered_exactly_by_ddim():
    s = make_schedule("linear", 1000)
    c = 0.25
    den = lambda x, t: (x - s.alpha_bar[t].float().sqrt().view(-1, 1, 1, 1) * c) / (1 - s.alpha_bar[t].float()).sqrt().view(-1, 1, 1, 1)  # noqa: E731
    x = sample(den, (1, 3, 4, 4), s, torch.Generator().manual_seed(0), sampler="ddim", steps=10, eta=0.0)
    torch.testing.assert_close(x, torch.full_like(x, c), atol=1e-5, rtol=0)


def test_unet_cifar_config_has_ho_et_al_size():
    net = DDPMUNet(UNetConfig(3, 3, 128, (1, 2, 2, 2), 2, (1,), 0.1))
    assert sum(p.numel() for p in net.parameters()) == 35_746_307  # the paper's 35.7M CIFAR-10 model


def test_unet_shapes_time_conditioning_and_size_check():
    torch.manual_seed(0)
    net = DDPMUNet(UNetConfig(6, 3, 16, (1, 2), 1, (1,), 0.0, 8)).eval()
    x = torch.randn(2, 6, 8, 12)
    with torch.no_grad():
        a = net(x, torch.tensor([1, 1]))
        b = net(x, torch.tensor([900, 900]))
    assert a.shape == (2, 3, 8, 12) and not torch.allclose(a, b)
    with pytest.raises(ValueError, match="multiple of 2"):
        net(torch.randn(1, 6, 7, 8), torch.tensor([0]))
    cfg = UNetConfig.from_dict(UNetConfig().to_dict())
    assert cfg == UNetConfig() and math.isclose(cfg.size_multiple, 8)


def test_unet_blocks_come_from_registries_and_unknown_names_fail():
    from srarena.methods.diffusion import unet as U

    class ScaledRes(U.ResBlock):
        def __init__(self, cin, cout, temb, dropout, groups, gain=1.0):
            super().__init__(cin, cout, temb, dropout, groups)
            self.gain = gain

        def forward(self, x, emb):
            return super().forward(x, emb) * self.gain

    U.RES_BLOCKS["test_scaled"] = ScaledRes
    try:
        cfg = UNetConfig(6, 3, 16, (1, 2), 1, (1,), 0.0, 8, res_block="test_scaled", res_options={"gain": 0.5},
                         embedding="ldm")
        net = DDPMUNet(cfg).eval()
        assert all(b.gain == 0.5 for b in net.modules() if isinstance(b, ScaledRes))
        assert sum(isinstance(b, ScaledRes) for b in net.modules()) == 2 + 2 + 4  # down 2 levels x 1, middle 2, up 2 levels x 2
        out = net(torch.randn(1, 6, 8, 8), torch.tensor([3.5]))  # fractional time is fine
        assert out.shape == (1, 3, 8, 8)
        assert UNetConfig.from_dict(cfg.to_dict()) == cfg
    finally:
        del U.RES_BLOCKS["test_scaled"]
    with pytest.raises(ValueError, match="unknown U-Net res_block 'nope'"):
        DDPMUNet(UNetConfig(res_block="nope"))
    with pytest.raises(ValueError, match="unknown U-Net option"):
        UNetConfig.from_dict({"chh": 3})


def test_ldm_embedding_matches_diffusers():
    diffusers = pytest.importorskip("diffusers")
    from diffusers.models.embeddings import get_timestep_embedding

    from srarena.methods.diffusion.unet import timestep_embedding_ldm

    t = torch.tensor([0.0, 1.0, 17.0, 999.0, 250.5])
    ref = get_timestep_embedding(t, 160, flip_sin_to_cos=True, downscale_freq_shift=0)
    torch.testing.assert_close(timestep_embedding_ldm(t, 160), ref, atol=1e-5, rtol=1e-5)
    assert diffusers.__version__
