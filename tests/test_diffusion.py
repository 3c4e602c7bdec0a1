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


# -- sampler: spacing, start part-way, clipping, time input, callback (issue 11, item 4) ---------

SPACING_GRID = [(T, n) for T in (1000, 2000, 100, 50, 7) for n in sorted({1, 2, 3, 4, 7, 10, 25, 48, 50, 61, 103, 250, 999} | {T - 1}) if n < T]


@pytest.mark.parametrize("spacing", ["leading", "linspace", "trailing"])
def test_spacings_match_diffusers_timesteps(spacing):
    diffusers = pytest.importorskip("diffusers")
    extra = 0
    for T, n in SPACING_GRID:
        sched = diffusers.DDIMScheduler(num_train_timesteps=T, timestep_spacing=spacing)
        sched.set_timesteps(n)
        ref = sched.timesteps.tolist()
        ours = timestep_sequence(T, n, spacing)
        assert len(ours) == n and ours == sorted(set(ours), reverse=True) and ours[-1] >= 0
        if len(ref) == n + 1:  # diffusers' float arange yields one extra timestep, -1 (T=1000, n=61)
            assert spacing == "trailing" and ref[-1] == -1
            ref, extra = ref[:n], extra + 1
        assert ours == ref, (T, n)
    assert spacing != "trailing" or extra > 0  # the grid does reach diffusers' extra-element case


def test_one_step_from_noise_runs_at_the_last_timestep_with_trailing():
    assert timestep_sequence(1000, 1, "trailing") == [999]
    assert timestep_sequence(1000, 1, "linspace") == [0] == timestep_sequence(1000, 1, "leading")
    assert timestep_sequence(1000, 4, "trailing") == [999, 749, 499, 249]
    assert timestep_sequence(1000, 4, "leading") == [750, 500, 250, 0]
    s = make_schedule("scaled_linear", 1000)
    seen = []

    def one_step(x, t):  # an x0-predicting network (a one-step model): "the image is 0.3"
        seen.append(int(t[0]))
        return torch.full_like(x, 0.3)

    x = sample(one_step, (1, 3, 4, 4), s, torch.Generator().manual_seed(0), steps=1, spacing="trailing", prediction="x0")
    assert seen == [999]
    torch.testing.assert_close(x, torch.full_like(x, 0.3))
    with pytest.raises(ValueError, match="unknown timestep spacing"):
        timestep_sequence(1000, 4, "uniform")


@pytest.mark.parametrize("spacing, n", [("leading", 10), ("leading", 7), ("trailing", 10), ("trailing", 8)])
@pytest.mark.parametrize("eta", [0.0, 0.7])
def test_ddim_chain_equals_diffusers_ddim_scheduler(spacing, n, eta):
    """Same noise draws, same update: diffusers' DDIMScheduler.step (whose previous timestep is
    t - T // steps, the next element of these sequences) agrees with the sampler to float32."""
    diffusers = pytest.importorskip("diffusers")
    T = 1000
    s = make_schedule("linear", T)
    den = gaussian_oracle(s, 0.2, 0.4)
    sched = diffusers.DDIMScheduler(num_train_timesteps=T, beta_schedule="linear", beta_start=1e-4, beta_end=0.02,
                                    clip_sample=False, set_alpha_to_one=True, timestep_spacing=spacing)
    sched.set_timesteps(n)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 1, 8, 8, generator=g)
    for t in sched.timesteps:
        x = sched.step(den(x, t.view(1).repeat(2)), t, x, eta=eta, generator=g).prev_sample
    ours = sample(den, (2, 1, 8, 8), s, torch.Generator().manual_seed(5), sampler="ddim", steps=n, eta=eta,
                  spacing=spacing)
    torch.testing.assert_close(ours, x, atol=2e-5, rtol=1e-5)


def test_start_t_sequences():
    assert timestep_sequence(1000, None, start_t=4) == [4, 3, 2, 1, 0]  # every step from start_t
    assert timestep_sequence(1000, 4, "trailing", start_t=399) == [399, 299, 199, 99]
    assert timestep_sequence(1000, 5, "linspace", start_t=100)[0] == 100
    assert timestep_sequence(1000, 4, "leading", start_t=399) == [300, 200, 100, 0]
    with pytest.raises(ValueError, match="start_t"):
        timestep_sequence(1000, 4, start_t=1000)


def test_start_part_way_from_a_noised_clean_input():
    """SDEdit: x0_init noised to the first timestep with the caller's generator, then denoised."""
    s = make_schedule("linear", 1000)
    x0 = torch.rand(1, 3, 8, 8)
    first = []

    def den(x, t):
        if not first:
            first.append((x.clone(), int(t[0])))
        return torch.zeros_like(x)

    sample(den, (1, 3, 8, 8), s, torch.Generator().manual_seed(3), steps=5, spacing="trailing", start_t=249, x0_init=x0)
    x_start, t0 = first[0]
    ab = s.alpha_bar[249].item()
    expect = ab**0.5 * x0 + (1 - ab) ** 0.5 * torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    assert t0 == 249
    torch.testing.assert_close(x_start, expect)
    # an ideal denoiser of a point mass recovers it from any start
    c = 0.25
    point = lambda x, t: (x - s.alpha_bar[t].float().sqrt().view(-1, 1, 1, 1) * c) / (1 - s.alpha_bar[t].float()).sqrt().view(-1, 1, 1, 1)  # noqa: E731
    out = sample(point, (1, 3, 8, 8), s, torch.Generator().manual_seed(0), steps=3, start_t=100, x0_init=torch.full((1, 3, 8, 8), c))
    torch.testing.assert_close(out, torch.full_like(out, c), atol=1e-5, rtol=0)


def test_start_part_way_from_a_given_state():
    s = make_schedule("linear", 100)
    x_T = torch.randn(1, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    seen = []
    sample(lambda x, t: seen.append((x.clone(), int(t[0]))) or torch.zeros_like(x), (1, 1, 4, 4), s,
           torch.Generator(), steps=None, start_t=3, x_T=x_T)
    assert [t for _, t in seen] == [3, 2, 1, 0] and torch.equal(seen[0][0], x_T)
    with pytest.raises(ValueError, match="start_t needs x0_init or x_T"):
        sample(lambda x, t: x, (1, 1, 4, 4), s, torch.Generator(), start_t=3)
    with pytest.raises(ValueError, match="x0_init needs start_t"):
        sample(lambda x, t: x, (1, 1, 4, 4), s, torch.Generator(), x0_init=x_T)


@pytest.mark.parametrize("clip, expect", [(False, 5.0), (True, 1.0), ((-2.0, 3.0), 3.0)])
def test_x0_clipping_is_a_config_value_off_by_default(clip, expect):
    s = make_schedule("scaled_linear", 100)
    den = lambda x, t: torch.full_like(x, 5.0)  # noqa: E731  (x0-prediction: a latent outside [-1, 1])
    kw = {} if clip is False else {"clip_x0": clip}
    x = sample(den, (1, 4, 2, 2), s, torch.Generator().manual_seed(0), steps=10, prediction="x0", **kw)
    torch.testing.assert_close(x, torch.full_like(x, expect), atol=1e-5, rtol=0)


@pytest.mark.parametrize("time_input, dtype", [("int", torch.long), ("float", torch.float32)])
def test_time_input_and_callback(time_input, dtype):
    from srarena.methods.diffusion import StepInfo

    s = make_schedule("linear", 1000)
    ts, infos = [], []

    def den(x, t):
        assert t.dtype == dtype and t.shape == (2,)
        ts.append(t[0].item())
        return gaussian_oracle(s, 0.0, 1.0)(x, t.long())

    out = sample(den, (2, 1, 4, 4), s, torch.Generator().manual_seed(0), steps=4, spacing="trailing",
                 time_input=time_input, callback=infos.append)
    assert ts == [999, 749, 499, 249] and all(isinstance(i, StepInfo) for i in infos)
    assert [(i.index, i.t, i.t_prev) for i in infos] == [(0, 999, 749), (1, 749, 499), (2, 499, 249), (3, 249, -1)]
    assert all(isinstance(i.t, float if time_input == "float" else int) for i in infos)
    assert torch.equal(infos[-1].x, out) and infos[0].x0.shape == out.shape


def test_sampler_config_from_yaml():
    from srarena.methods.diffusion.samplers import SamplerConfig

    cfg = SamplerConfig.from_dict({"name": "ddim", "steps": 4, "eta": 0.5, "spacing": "trailing"})
    assert cfg.kwargs() == {"sampler": "ddim", "steps": 4, "eta": 0.5, "spacing": "trailing"}
    assert cfg.num_steps(1000) == 4 and SamplerConfig.from_dict({"steps": None}).num_steps(10) == 10
    with pytest.raises(ValueError, match="unknown sampler option"):
        SamplerConfig.from_dict({"stepz": 3})
    with pytest.raises(ValueError, match="spacing"):
        SamplerConfig.from_dict({"spacing": "uniform"})
