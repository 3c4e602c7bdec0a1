"""Degradations that make LR test inputs: MATLAB bicubic and the Real-ESRGAN second-order model.

Pure tensor functions (ops, pipeline) in the middle; presets validate ``conf/degradation/*.yaml``;
``sampling`` draws one image's parameters from its own seeded generator into a flat record that
``pipeline.degrade`` turns into the LR. Files are written only by ``srarena.harness.prepare``.
"""

from srarena.harness.degradations.errors import DegradationConfigError, DegradationInputError
from srarena.harness.degradations.pipeline import degrade, degrade_one
from srarena.harness.degradations.presets import BicubicPreset, SecondOrderPreset, load_preset
from srarena.harness.degradations.resize import imresize
from srarena.harness.degradations.sampling import sample_record
from srarena.harness.degradations.seeding import derive_seed, make_generator

__all__ = [
    "imresize",
    "load_preset",
    "SecondOrderPreset",
    "BicubicPreset",
    "sample_record",
    "degrade",
    "degrade_one",
    "derive_seed",
    "make_generator",
    "DegradationConfigError",
    "DegradationInputError",
]
