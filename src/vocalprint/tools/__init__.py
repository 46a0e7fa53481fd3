"""Tools around the pipeline: evaluation (evaluate), speed benchmarks (bench), ensemble selection
(select), the notebooks' analysis functions and runner (report, notebooks)
and the offline Kaggle kit (kaggle)."""
