"""Writing the submission inside the budget: the budgeted run with its fallback chain and watchdog
(submit), the validated atomic file (submission), the time projection (budget), ensembles and
self-contained model bundles (ensemble, bundle)."""
