"""Alias of :mod:`minift.source_models`, kept for this release so that old imports keep working.

The source-model ladder (recipes, save, load) and its pre-training (once ``minift.pretrain``, one
letter apart from this module's name) now live together in ``minift.source_models``; import from
there. This alias will be removed in a later release.
"""

from .source_models import (CHECKPOINT_DIR, LADDER, MAX_LEN, SourceRecipe, load_model, load_source_model,
                            read_metadata, recipe_for, save_model, source_config, source_models_info)

__all__ = ["CHECKPOINT_DIR", "LADDER", "MAX_LEN", "SourceRecipe", "load_model", "load_source_model",
           "read_metadata", "recipe_for", "save_model", "source_config", "source_models_info"]
