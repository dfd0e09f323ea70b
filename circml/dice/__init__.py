"""DICE: device-level circuit encoder: dual graph augmentation, the encoder, contrastive pretraining."""
from .encoder import (Callback, DiceConfig, DiceEncoder, EarlyStopping, QualityMonitor, held_out_split,
                      quality_report, retrieval_metrics, split_by_circuit)
from .augment import (NEGATIVE_RULES, POSITIVE_RULES, RULES, AugmentedBatch, Compose, NegativeView, PositiveView,
                      ToGraph, augment_batch, rule_mask)

__all__ = ["RULES", "POSITIVE_RULES", "NEGATIVE_RULES", "PositiveView", "NegativeView", "ToGraph", "Compose",
           "augment_batch", "AugmentedBatch", "rule_mask", "DiceEncoder", "DiceConfig", "retrieval_metrics",
           "quality_report", "split_by_circuit", "held_out_split", "EarlyStopping", "QualityMonitor", "Callback"]
