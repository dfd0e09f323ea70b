"""DICE: device-level circuit encoder: dual graph augmentation, the encoder, contrastive pretraining."""
from .encoder import DiceConfig, DiceEncoder, retrieval_metrics
from .augment import (NEGATIVE_RULES, POSITIVE_RULES, RULES, AugmentedBatch, Compose, NegativeView, PositiveView,
                      ToGraph, augment_batch, rule_mask)

__all__ = ["RULES", "POSITIVE_RULES", "NEGATIVE_RULES", "PositiveView", "NegativeView", "ToGraph", "Compose",
           "augment_batch", "AugmentedBatch", "rule_mask", "DiceEncoder", "DiceConfig", "retrieval_metrics"]
