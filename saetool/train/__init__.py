"""SAE training: objectives, the training loop, data streaming, checkpoints, samples.

Public API::

    from saetool.train import TrainConfig, train_sae, train_on_batches

``train_sae`` trains on activation artifacts and writes an ``sae`` artifact
(what ``saetool train`` runs); ``train_on_batches`` trains on any iterator of
tensors. Importing this package does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from saetool.train.config import SampleSettings, Targets, TrainConfig

if TYPE_CHECKING:
    from saetool.train.api import train_sae
    from saetool.train.trainer import TrainResult, train_on_batches

# Deferred imports: loaded by `saetool --help` (the train command reads TrainConfig); the trainer and torch load on first use.

__all__ = ["SampleSettings", "Targets", "TrainConfig", "TrainResult", "train_on_batches", "train_sae"]


def __getattr__(name: str) -> Any:
    if name == "train_sae":
        from saetool.train.api import train_sae

        return train_sae
    if name in ("train_on_batches", "TrainResult"):
        from saetool.train import trainer

        return getattr(trainer, name)
    raise AttributeError(name)
