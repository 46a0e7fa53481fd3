"""`make scale`: measure every stage at a few fractions of BirdCLEF+ 2025's size on synthetic data
(:mod:`.run`), fit and project the costs (:mod:`.fit`), and table and plot them (:mod:`.report`).
It reads the model registry, so it sits beside it above the families."""
