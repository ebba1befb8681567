"""Prune whole corpora on a data engine: Ray Data (:class:`RayPruner`) and Spark
(:func:`~pruning_encoder.engines.spark.pruning_udf`, imported from its module so that
Spark is needed only there), both on one engine-neutral :class:`BatchPruner`."""

from __future__ import annotations

from .batch_pruner import BatchPruner
from .ray_data import RayPruner

__all__ = ["BatchPruner", "RayPruner"]
