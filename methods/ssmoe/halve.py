"""Store a trained ssmoe file with float16 weights (half the size of the exported float32 file).

``python -m srarena.methods.ssmoe.halve FILE`` rewrites FILE in place: floating-point tensors become
float16 except the latent scale; integer buffers (BatchNorm counters) are kept; the metadata is kept
and records ``stored_dtype``. Loading casts every tensor back to the module's dtype
(:func:`srarena.methods.state_dicts.load_into`), so only the weights' precision changes (float16
keeps ~3 significant digits; the demo's PSNR-Y is measured on the float16 file).
"""

from __future__ import annotations

import sys

from srarena.methods.state_dicts import read_state_dict, save_safetensors

KEEP_FLOAT32 = ("experts.latent_scale",)


def halve(path: str) -> None:
    state, meta = read_state_dict(path)
    out = {k: v.half() if v.is_floating_point() and k not in KEEP_FLOAT32 else v for k, v in state.items()}
    save_safetensors(path, out, {**meta, "stored_dtype": "float16 (weights; cast to float32 on load)"})


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        halve(arg)
