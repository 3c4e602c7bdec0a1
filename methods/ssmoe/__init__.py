"""SS-MoE latent-diffusion SR: Sampling-space and Space Mixtures of Experts with a
frequency-compensated decoder (Luo, Xiang et al. 2023; official code tencent-ailab/Frequency_Aug_VAE_MoESR).

Modules, one job each:

* :mod:`.blocks` — LDM res/attention blocks and the Space-MoE FFN, registered into the shared
  U-Net skeleton (:mod:`srarena.methods.diffusion.unet`) on import;
* :mod:`.experts` — the LDM denoiser on that skeleton, sampling-space experts routed by t, momentum
  weight sharing;
* :mod:`.aff`, :mod:`.fcd` — adaptive frequency filtering blocks and the frequency-compensated decoder;
* :mod:`.colorfix` — AdaIN colour correction;
* :mod:`.method` — :class:`SSMoESR`, the method (``conf/method/ssmoe*.yaml``);
* :mod:`.training` — the training stages (autoencoder, denoisers, decoder) and the focal frequency loss;
* :mod:`.official` — released 8x weights (key names of the official modules) as a weight bundle;
* :mod:`.diffusers_convert` — diffusers LDM-SR <-> these modules (the cross-implementation check);
* :mod:`.costs` — paper-scale parameter/FLOP table on the meta device.
"""

from srarena.methods.ssmoe import blocks  # noqa: F401  (registers the LDM blocks)
from srarena.methods.ssmoe.method import SSMoESR

__all__ = ["SSMoESR"]
