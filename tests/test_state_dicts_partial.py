"""Partial state-dict loading for adapters: what loads, what is reported, what is refused."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from srarena.methods.state_dicts import CheckpointError, LoadReport, load_partial


class Adapted(nn.Module):
    """A base layer plus a LoRA-style adapter, the shape of a fine-tuned model."""

    def __init__(self) -> None:
        super().__init__()
        self.base = nn.Linear(4, 4)
        self.lora = nn.ModuleDict({"down": nn.Linear(4, 2, bias=False), "up": nn.Linear(2, 4, bias=False)})


def test_adapter_file_loads_and_reports_the_base_keys_as_missing():
    m = Adapted()
    base_before = m.base.weight.detach().clone()
    adapter = {"lora.down.weight": torch.ones(2, 4, dtype=torch.float64), "lora.up.weight": torch.full((4, 2), 2.0)}
    rep = load_partial(m, adapter, "s3diff.pkl", allow_missing=("base.",))
    assert rep == LoadReport(missing=["base.bias", "base.weight"], unexpected=[], loaded=2)
    assert torch.equal(m.lora.down.weight, torch.ones(2, 4)) and m.lora.down.weight.dtype == torch.float32
    assert torch.equal(m.base.weight, base_before)  # untouched


def test_extra_keys_inside_allowed_prefixes_are_reported_not_loaded():
    m = Adapted()
    state = {**Adapted().state_dict(), "text_encoder.proj": torch.zeros(3), "ema.decay": torch.tensor(0.9)}
    rep = load_partial(m, state, "f.safetensors", allow_unexpected=("text_encoder.", "ema."))
    assert rep.unexpected == ["ema.decay", "text_encoder.proj"] and rep.missing == [] and rep.loaded == 4


def test_keys_outside_the_allowed_prefixes_are_refused_before_anything_loads():
    m = Adapted()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    state = {"lora.down.weight": torch.zeros(2, 4), "lora.mid.weight": torch.zeros(1)}
    with pytest.raises(CheckpointError) as e:
        load_partial(m, state, "bad.pth", allow_missing=("base.",))
    msg = str(e.value)
    assert "bad.pth" in msg and "1 missing outside ['base.']: ['lora.up.weight']" in msg
    assert "1 unexpected outside []: ['lora.mid.weight']" in msg
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k]), k  # nothing half-loaded


def test_shape_mismatch_is_refused_whatever_the_prefixes():
    m = Adapted()
    with pytest.raises(CheckpointError, match=r"1 with other shapes: \['lora.down.weight: file \(3, 4\) vs model \(2, 4\)'\]"):
        load_partial(m, {"lora.down.weight": torch.zeros(3, 4)}, "r8.safetensors", allow_missing=("",), allow_unexpected=("",))
