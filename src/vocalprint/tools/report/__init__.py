"""Analyst reports behind the notebooks: read finished artifacts and plot them.

Nothing here runs a pipeline stage. Inputs are the metrics of ``evaluate`` (``metrics/<model>.json``
and the scored per-window ``metrics/<model>.csv``), ``bench/bench.json``, the data folder's
``solution.csv`` and test audio, and the complete stage folders ``mels``, ``tokens``, ``w2v`` and
``features``.

Modules:

- :mod:`.folders` -- finding complete stage folders and the newest stage chain (``REPO``, ``CHAIN``).
- :mod:`.results` -- truth, metrics and bench; bootstrap CIs, paired differences to the best model,
  model, per-class and per-species tables, window errors.
- :mod:`.soundscapes` -- one scoring window of a test soundscape: file, log-Mel, events.
- :mod:`.tokens` -- token counts, entropy, lift, neighbours, frames nearest a centroid, PCA.
- :mod:`.plots` -- every ``plot_*`` and the notebook helpers ``notebook_setup`` and ``show``.

The public functions are re-exported here for the notebooks (``from vocalprint.tools import
report`` then ``report.plot_model_auc(...)``). Importing this package does not import matplotlib:
the plots import pyplot inside the functions, and each returns a matplotlib figure.
"""
from vocalprint.tools.report.folders import (CHAIN, REPO, StageFolder, complete_folders, latest_chain,
                                             same_folder, stage_config)
from vocalprint.tools.report.plots import (notebook_setup, plot_auc_vs_minutes, plot_class_auc,
                                           plot_embedding, plot_model_auc, plot_paired_diff,
                                           plot_per_species, plot_token_gallery, plot_token_usage,
                                           plot_windows, show)
from vocalprint.tools.report.results import (bootstrap_ci, class_table, end_seconds, load_metrics,
                                             macro_auc_ranks, model_table, paired_diff, paired_table,
                                             per_species_table, read_bench, read_classes, read_scores,
                                             read_truth, soundscape_draws, soundscape_ids, species_errors,
                                             window_errors, worst_windows)
from vocalprint.tools.report.soundscapes import find_soundscape, window_events, window_logmel
from vocalprint.tools.report.tokens import (cosine_neighbours, entropy_bits, frame_patches, lift,
                                            nearest_frames, neighbour_table, pca_2d, pick_tokens,
                                            species_token_counts, subsampled_entropy, token_counts,
                                            token_examples, token_usage, train_labels, typical_tokens,
                                            window_species)

__all__ = [
    "CHAIN", "REPO", "StageFolder", "complete_folders", "latest_chain", "same_folder", "stage_config",
    "notebook_setup", "plot_auc_vs_minutes", "plot_class_auc", "plot_embedding", "plot_model_auc",
    "plot_paired_diff", "plot_per_species", "plot_token_gallery", "plot_token_usage", "plot_windows", "show",
    "bootstrap_ci", "class_table", "end_seconds", "load_metrics", "macro_auc_ranks", "model_table",
    "paired_diff", "paired_table", "per_species_table", "read_bench", "read_classes", "read_scores",
    "read_truth", "soundscape_draws", "soundscape_ids", "species_errors", "window_errors", "worst_windows",
    "find_soundscape", "window_events", "window_logmel",
    "cosine_neighbours", "entropy_bits", "frame_patches", "lift", "nearest_frames", "neighbour_table",
    "pca_2d", "pick_tokens", "species_token_counts", "subsampled_entropy", "token_counts", "token_examples",
    "token_usage", "train_labels", "typical_tokens", "window_species",
]
