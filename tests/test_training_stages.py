"""Multi-part training: stages, frozen modules, parameter groups, named loss inputs, hooks, resume.

A toy two-part model stands for a latent diffusion model: ``den`` (a denoiser with a BatchNorm,
whose running statistics move in train mode) and ``dec`` (a decoder holding a ``base`` part that
can be frozen inside it). Stage ``denoisers`` trains ``den`` on an eps loss; stage ``decoder``
trains ``dec`` on the SR output with ``den`` frozen.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from srarena.harness.errors import ConfigError
from srarena.harness.training.checkpoint import stage_file
from srarena.harness.training.export import export_state
from srarena.harness.training.loop import LoopConfig, train_loop
from srarena.harness.training.losses import LOSSES, WeightedLoss, register_loss
from srarena.harness.training.protocol import TrainBatch
from srarena.harness.training.stages import parse_stages
from srarena.methods.diffusion.training import sample_timesteps, split_ranges
from srarena.methods.state_dicts import CheckpointError, read_state_dict


class Decoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.base = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4))
        self.head = nn.Conv2d(4, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.base(x)))


class Toy:
    """A TrainableMethod of two parts; records what it sees in every step."""

    def __init__(self) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.den = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 3, 3, padding=1))
            self.dec = Decoder()
        self.pinned = self.dec.head.bias
        self.seen: list[dict] = []
        self.start: dict[str, dict[str, torch.Tensor]] = {}  # stage -> den's state at its first step
        self.hooks: list[tuple[int, str]] = []

    def training_modules(self) -> dict[str, nn.Module]:
        return {"den": self.den, "dec": self.dec, "dec_base": self.dec.base}

    def training_outputs(self, batch: TrainBatch, generator: torch.Generator, stage: str) -> dict[str, torch.Tensor]:
        self.seen.append({
            "stage": stage,
            "den_training": [m.training for m in self.den.modules()],
            "dec_training": self.dec.training,
            "base_training": [m.training for m in self.dec.base.modules()],
            "den_grad": [p.requires_grad for p in self.den.parameters()],
            "dec_grad": {n: p.requires_grad for n, p in self.dec.named_parameters()},
            "records": batch.records,
        })
        self.start.setdefault(stage, snapshot(self.den))
        noise = 0.1 * torch.randn(batch.hr.shape, generator=generator)
        den_out = self.den(batch.hr + noise)
        return {"eps_pred": batch.hr + noise - den_out, "eps": noise, "sr": self.dec(den_out), "hr": batch.hr}

    def after_step(self, step: int, stage: str) -> None:
        assert not torch.is_grad_enabled()
        self.hooks.append((step, stage))

    def checkpoint_metadata(self) -> dict[str, object]:
        return {"method": "toy"}


class Batches:
    """Batches as a pure function of the step, with a per-sample record."""

    def batch(self, step: int) -> TrainBatch:
        g = torch.Generator().manual_seed(step)
        hr = torch.rand(2, 3, 8, 8, generator=g)
        ids = [f"s{step}/{i}" for i in range(2)]
        return TrainBatch(lr=hr[..., ::2, ::2], hr=hr, ids=ids, records=[{"image_id": x, "sigma": step + i} for i, x in enumerate(ids)])


TWO_STAGES = {
    "ema_decay": 0.5,
    "optim": {"lr": 1e-2, "schedule": "cosine", "warmup_steps": 1},
    "stages": [
        {"name": "denoisers", "steps": 3, "train": {"den": {}}, "freeze": ["dec"],
         "losses": [{"name": "mse", "inputs": ["eps_pred", "eps"]}]},
        {"name": "decoder", "steps": 4, "train": {"dec": {"lr": 5e-3}}, "freeze": ["den", "dec_base"],
         "losses": [{"name": "l1", "inputs": ["sr", "hr"]}, {"name": "charbonnier", "weight": 0.5,
                                                            "inputs": ["sr", "hr"], "eps": 0.1}]},
    ],
}


def run(tmp: Path, name: str, train: dict = TWO_STAGES, log=None, method: Toy | None = None, **kw):
    method = method or Toy()
    method.pinned.requires_grad_(False)  # a parameter the method pins: never trained
    cfg = LoopConfig(parse_stages(train, list(method.training_modules())), log_every=1, checkpoint_every=2,
                     progress=False)
    result = train_loop(method, Batches(), cfg, torch.device("cpu"), tmp / f"{name}.safetensors",
                        log or (lambda s, v: None), **kw)
    return method, result


def snapshot(m: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def test_frozen_modules_stay_frozen_in_eval_mode_and_out_of_the_training_state(tmp_path):
    m = Toy()
    dec_before = snapshot(m.dec)
    run(tmp_path, "t", method=m)
    s1, s2 = [s for s in m.seen if s["stage"] == "denoisers"], [s for s in m.seen if s["stage"] == "decoder"]
    assert len(s1) == 3 and len(s2) == 4
    for s in s1:  # stage 1: den trains, the decoder is frozen and in eval mode
        assert all(s["den_training"]) and all(s["den_grad"]) and not s["dec_training"]
        assert not any(s["dec_grad"].values()) and not any(s["base_training"])
    for s in s2:  # stage 2: den frozen (its BatchNorm too); dec trains except its frozen base and pinned bias
        assert not any(s["den_training"]) and not any(s["den_grad"])
        assert s["dec_training"] and not any(s["base_training"])
        assert s["dec_grad"] == {"base.0.weight": False, "base.0.bias": False, "base.1.weight": False,
                                 "base.1.bias": False, "head.weight": True, "head.bias": False}
    # den unchanged through stage 2 (weights and BatchNorm statistics), dec's base never moved
    for k, v in snapshot(m.den).items():
        assert torch.equal(v, m.start["decoder"][k]), k
    for k, v in snapshot(m.dec).items():
        assert torch.equal(v, dec_before[k]) == (k != "head.weight"), k
    # the training checkpoint of stage 2 holds only what stage 2 trains: tensors, EMA, optimiser
    tensors, meta = read_state_dict(tmp_path / "t.safetensors")
    assert meta["stage_name"] == "decoder" and meta["stage_step"] == "4" and meta["step"] == "7"
    assert sorted(tensors) == ["ema/dec.head.weight", "model/dec.head.weight", "optim/0/exp_avg",
                               "optim/0/exp_avg_sq", "optim/0/step"]
    # stage 1's file holds den's weights and BatchNorm statistics, nothing of the decoder
    s1_file, _ = read_state_dict(stage_file(tmp_path / "t.safetensors", 0, "denoisers"))
    assert sorted(s1_file) == sorted(f"den.{k}" for k in m.den.state_dict())
    for k, v in m.den.state_dict().items():
        assert torch.equal(s1_file[f"den.{k}"], v), k
    assert not any(mod.training for mod in [*m.den.modules(), *m.dec.modules()])  # eval after the loop


def test_after_step_once_per_step_and_records_reach_the_method(tmp_path):
    m, result = run(tmp_path, "h")
    assert m.hooks == [(1, "denoisers"), (2, "denoisers"), (3, "denoisers"),
                       (1, "decoder"), (2, "decoder"), (3, "decoder"), (4, "decoder")]
    assert result.step == 7 and result.trained == ("den", "dec")
    assert [r["sigma"] for r in m.seen[4]["records"]] == [4, 5]  # global step 4, per-sample records


def test_per_group_learning_rates(tmp_path):
    train = {"steps": 1, "losses": [{"name": "l1", "inputs": ["sr", "hr"]}],
             "optim": {"lr": 1e-3, "schedule": "constant"},
             "stages": [{"name": "both", "train": {"den": {"lr": 1e-2}, "dec": {}}}]}
    m = Toy()
    den0, head0 = m.den[0].weight.detach().clone(), m.dec.head.weight.detach().clone()
    logged: list[dict] = []
    run(tmp_path, "lr", train, log=lambda s, v: logged.append(v), method=m)
    assert logged[0]["lr_den"] == 1e-2 and logged[0]["lr_dec"] == 1e-3
    # Adam's first step moves each weight by ~lr (m / sqrt(v) = sign(g)): each group at its own rate
    assert (m.den[0].weight - den0).abs().max().item() == pytest.approx(1e-2, rel=1e-3)
    assert (m.dec.head.weight - head0).abs().max().item() == pytest.approx(1e-3, rel=1e-3)


def test_loss_inputs_and_params_from_config():
    def scaled_gap(a: torch.Tensor, b: torch.Tensor, scale: float = 1.0, power: int = 1) -> torch.Tensor:
        return scale * ((a - b).abs() ** power).mean()

    if "scaled_gap" not in LOSSES:
        register_loss("scaled_gap", scaled_gap)
    outputs = {"x": torch.tensor([1.0, 3.0]), "y": torch.tensor([0.0, 1.0]), "z": torch.tensor([2.0, 4.0])}
    loss = WeightedLoss([
        {"name": "scaled_gap", "inputs": ["x", "y"], "scale": 3.0, "power": 2, "weight": 0.5},
        {"name": "scaled_gap", "inputs": ["x", "z"]},
        {"name": "mean", "inputs": ["z"], "weight": 2.0},
    ])
    total, terms = loss(outputs)
    assert terms == {"loss_scaled_gap": 3.0 * 2.5, "loss_scaled_gap_x_z": 1.0, "loss_mean": 3.0}
    assert total.item() == 0.5 * 7.5 + 1.0 + 2.0 * 3.0
    with pytest.raises(ConfigError, match="unexpected keyword argument 'alpha'"):
        WeightedLoss([{"name": "scaled_gap", "inputs": ["x", "y"], "alpha": 1.0}])
    with pytest.raises(ConfigError, match="one or two inputs"):
        WeightedLoss([{"name": "l1", "inputs": ["a", "b", "c"]}])
    with pytest.raises(ConfigError, match=r"no output named \['pred', 'target'\]; its outputs are \['x', 'y', 'z'\]"):
        WeightedLoss([{"name": "l1"}])(outputs)
    with pytest.raises(ValueError, match="registered twice"):
        register_loss("l1", lambda a, b: a)


@pytest.mark.parametrize("crash_at", [2, 5])  # inside stage 1 / inside stage 2
def test_resume_mid_stage_equals_an_uninterrupted_run_bit_for_bit(tmp_path, crash_at):
    class Interrupt(Exception):
        pass

    straight_log: list[tuple[int, dict]] = []
    straight, _ = run(tmp_path, "straight", log=lambda s, v: straight_log.append((s, v)))

    def crash(step: int, values: dict) -> None:
        if step == crash_at:  # the checkpoint of this step is on disk (checkpoint_every=2 ...)
            raise Interrupt  # ... for step 2; step 5 crashes 1 step after the checkpoint of step 4

    with pytest.raises(Interrupt):
        run(tmp_path, "resumed", log=crash)
    resumed_log: list[tuple[int, dict]] = []
    resumed, result = run(tmp_path, "resumed", log=lambda s, v: resumed_log.append((s, v)))
    assert result.step == 7
    first = resumed_log[0][0]
    assert first == (3 if crash_at == 2 else 5)  # continued after the last checkpoint, not from 0
    assert resumed_log == [e for e in straight_log if e[0] >= first]  # same losses, lrs, stages
    for part in ("den", "dec"):
        a, b = getattr(straight, part).state_dict(), getattr(resumed, part).state_dict()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{part}.{k}"


def test_resume_refuses_a_checkpoint_of_other_stages(tmp_path):
    run(tmp_path, "x")  # finished: its training checkpoint is in stage 1, 'decoder'
    renamed = {**TWO_STAGES, "stages": [TWO_STAGES["stages"][0], {**TWO_STAGES["stages"][1], "name": "dec2"}]}
    with pytest.raises(CheckpointError, match=r"stage 1 \('decoder'\); this run's stages are \['denoisers', 'dec2'\]"):
        run(tmp_path, "x", renamed)
    stage_file(tmp_path / "x.safetensors", 0, "denoisers").unlink()
    with pytest.raises(CheckpointError, match="missing; the training checkpoint beside it is in a later stage"):
        run(tmp_path, "x")


def test_stage_config_errors():
    mods = ["den", "dec", "dec_base"]
    losses = [{"name": "l1"}]
    with pytest.raises(ConfigError, match=r"unknown module 'unet'; the method's training modules are"):
        parse_stages({"losses": losses, "stages": [{"name": "a", "steps": 1, "train": ["unet"]}]}, mods)
    with pytest.raises(ConfigError, match="unique `name`"):
        parse_stages({"steps": 1, "losses": losses, "stages": [{"name": "a", "train": ["den"]}, {"name": "a", "train": ["dec"]}]}, mods)
    with pytest.raises(ConfigError, match=r"\['den'\] both trained and frozen"):
        parse_stages({"steps": 1, "losses": losses, "stages": [{"name": "a", "train": ["den"], "freeze": ["den"]}]}, mods)
    with pytest.raises(ConfigError, match=r"unknown keys \['momentum'\]"):
        parse_stages({"steps": 1, "losses": losses, "stages": [{"name": "a", "train": {"den": {"momentum": 0.9}}}]}, mods)
    with pytest.raises(ConfigError, match="steps must be >= 1"):
        parse_stages({"losses": losses, "stages": [{"name": "a", "train": ["den"]}]}, mods)
    with pytest.raises(ConfigError, match="not one of cosine, constant"):
        parse_stages({"steps": 1, "losses": losses, "optim": {"schedule": "step"}}, mods)
    one = parse_stages({"steps": 5, "losses": losses, "optim": {"lr": 0.1}}, mods)  # no stages: one, all modules
    assert len(one) == 1 and one[0].name == "train" and list(one[0].train) == mods and one[0].optim.lr == 0.1
    two = parse_stages(TWO_STAGES, mods)
    assert two[1].optim.warmup_steps == 1 and two[1].train == {"dec": {"lr": 5e-3}} and two[1].ema_decay == 0.5


def test_export_layout_one_module_plain_several_prefixed():
    m = Toy()
    mods = m.training_modules()
    assert sorted(export_state(mods, ["den"])) == sorted(m.den.state_dict())
    both = export_state(mods, ["den", "dec"])
    assert sorted(both) == sorted([f"den.{k}" for k in m.den.state_dict()] + [f"dec.{k}" for k in m.dec.state_dict()])
    with pytest.raises(ConfigError, match="export_modules"):
        export_state(mods, ["vae"])


def test_sample_timesteps_per_sample_ranges():
    g = torch.Generator().manual_seed(0)
    assert torch.equal(sample_timesteps(6, g, None, 1000), torch.randint(1000, (6,), generator=torch.Generator().manual_seed(0)))
    ranges = split_ranges(1000, 4)
    assert ranges == [(0, 250), (250, 500), (500, 750), (750, 1000)]
    per_sample = [ranges[i % 4] for i in range(4000)]
    t = sample_timesteps(4000, g, per_sample, 1000)
    assert t.dtype == torch.int64
    for k, (lo, hi) in enumerate(ranges):
        tk = t[k::4]
        assert int(tk.min()) == lo and int(tk.max()) == hi - 1  # each expert's samples cover exactly its range
        assert abs(tk.float().mean().item() - (lo + hi - 1) / 2) < 5  # uniform inside it
    one = sample_timesteps(500, g, [(10, 13)], 1000)
    assert set(one.tolist()) == {10, 11, 12}
    cont = sample_timesteps(1000, g, [(0.0, 0.5), (0.5, 1.0)] * 500, 1, continuous=True)
    assert cont.dtype == torch.float32 and cont[0::2].max() < 0.5 <= cont[1::2].min() and cont.max() < 1.0
    assert torch.equal(sample_timesteps(3, torch.Generator().manual_seed(1), [(0, 9)] * 3, 10),
                       sample_timesteps(3, torch.Generator().manual_seed(1), [(0, 9)] * 3, 10))
    with pytest.raises(ValueError, match="one timestep range per sample"):
        sample_timesteps(3, g, [(0, 1), (1, 2)], 10)
    with pytest.raises(ValueError, match="0 <= lo < hi <= T=10"):
        sample_timesteps(2, g, [(5, 11)], 10)
    with pytest.raises(ValueError, match="integer range bounds"):
        sample_timesteps(2, g, [(0.5, 3)], 10)
