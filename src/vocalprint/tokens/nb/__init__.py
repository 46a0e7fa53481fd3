"""Frame-level naive-Bayes token model (``tokens-nb``).

Every Mel frame becomes a token of one or more K-means codebooks ("views": log-Mel, PCEN, ...).
A per-view table ``[K, n_species]`` holds the naive-Bayes log-ratio
``log P(token | frames of the species) - log P(token | other frames)``, counted over the *active*
frames of the focal clips (energy-based activity mask) and over synthetic 5-s field mixes
(:func:`vocalprint.audio.mix.mix_windows`: focal calls over quiet stretches of the unlabelled train
soundscapes, or coloured noise) with frame-level targets. At inference a frame's score is the sum
of its tokens' table rows; a window's score is the mean of its ``top_k`` highest frame scores after
a ``smooth_frames`` moving average; a sigmoid of the standardised score gives a probability (a
monotone map, so ranking metrics are unchanged).

Stage folder ``artifacts/nb/<key>/``: ``codebook_<view>.npy`` (centroids), ``table_<view>.npy``,
``calib.json``; the per-file frames built on the way (``<key>.partial/frames``, ``mixes``) are kept
across a killed run and deleted once the tables are written.

Modules: :mod:`.views` (the codebooks' views, front ends, frame features and tokens),
:mod:`.table` (counting and scoring, pure functions), :mod:`.stage` (the cached stage) and
:mod:`.predictor` (inference).
"""
