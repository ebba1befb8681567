"""Old import paths of modules that moved into ``training/``, ``data/`` and ``evaluation/``.

``import pruning_encoder.trainer`` and the like keep working for one release: the import returns the
module at its new path and warns with a ``DeprecationWarning`` that names it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from types import ModuleType

MOVED = {
    "pruning_encoder.trainer": "pruning_encoder.training.trainer",
    "pruning_encoder.training_args": "pruning_encoder.training.training_args",
    "pruning_encoder.losses": "pruning_encoder.training.losses",
    "pruning_encoder.data_collator": "pruning_encoder.training.data_collator",
    "pruning_encoder.train_config": "pruning_encoder.training.config",
    "pruning_encoder.train": "pruning_encoder.training.train",
    "pruning_encoder.dataset": "pruning_encoder.data.records",
    "pruning_encoder.wiki_data": "pruning_encoder.data.wiki",
    "pruning_encoder.wiki_questions": "pruning_encoder.data.wiki_questions",
    "pruning_encoder.fanoutqa": "pruning_encoder.data.fanoutqa",
    "pruning_encoder.benchmark": "pruning_encoder.evaluation.benchmark",
    "pruning_encoder.calibration": "pruning_encoder.evaluation.calibration",
}


class MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves each old module path in :data:`MOVED` to the module at its new path."""

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = MOVED[spec.name]
        warnings.warn(
            f"{spec.name} moved to {new}; the old path goes away in the next release.",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module(new)

    def exec_module(self, module: ModuleType) -> None:
        """The module was executed at its new path already."""


def install() -> None:
    """Puts the finder on ``sys.meta_path`` once."""
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
