"""What every stage shares: hashed stage folders and manifests (artifacts), the executor and per-file
parallel map (parallel), progress lines (progress), the metric (metrics), clocks (timing) and
small numeric helpers (numeric). Imports config only."""
