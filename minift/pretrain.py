"""Alias of :mod:`minift.source_models`, kept for this release: ``python -m minift.pretrain`` still
rebuilds the source-model ladder, with the same options.

Use ``python -m minift.source_models`` (or ``make pretrain``) and import pretrain() from
``minift.source_models``. This alias will be removed in a later release.
"""

from .source_models import (CHECKPOINT_DIR, LADDER, MAX_LEN, VALIDATION_SEED, corpus_split, main, pretrain,
                            recipe_for, save_model, source_config)

__all__ = ["CHECKPOINT_DIR", "LADDER", "MAX_LEN", "VALIDATION_SEED", "corpus_split", "main", "pretrain",
           "recipe_for", "save_model", "source_config"]

if __name__ == "__main__":
    main()
