"""One name per method (the conf/method YAML's), one device resolver."""

from __future__ import annotations

import importlib

import pytest
import torch

import srarena.methods.base as base
from srarena.harness.devices import resolve_device
from srarena.harness.errors import ConfigError
from srarena.methods.base import MethodError
from srarena.methods.catalog import build_method, method_config, method_names


def test_the_method_registry_is_conf_method():
    names = method_names()
    assert {"bicubic", "rrdbnet_demo", "sr3_demo", "ldm_sr"} <= set(names)
    for name in names:  # every YAML names an importable class
        module, cls = str(method_config(name)["_target_"]).rsplit(".", 1)
        assert hasattr(importlib.import_module(module), cls), name
    assert not hasattr(base, "register_method")  # no second registry, no second name


def test_build_method_uses_the_yaml_name_everywhere():
    m = build_method("rrdbnet_demo", ["tile=0"], device="cpu")
    assert m.name == "rrdbnet_demo" and m.num_params() == 578_755  # the committed demo checkpoint
    with pytest.raises(MethodError, match="'rrdbnet_demo' supports scales"):
        m.check_scale(2)
    assert build_method("bicubic").name == "bicubic"
    with pytest.raises(MethodError, match="unknown method 'nope'.*bicubic"):
        build_method("nope")


def test_one_device_resolver():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="device=gpu"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda:0")
