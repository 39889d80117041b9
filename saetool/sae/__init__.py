"""Sparse autoencoders: the inference SAE (encode/decode) and its configuration.

Training concerns (losses, auxiliary losses, schedules) live in
:mod:`saetool.train`; architectures (:mod:`saetool.train.architectures`) tie
the two together and are plugins.
"""

from saetool.sae.config import SAEConfig
from saetool.sae.model import SAE

__all__ = ["SAE", "SAEConfig"]
