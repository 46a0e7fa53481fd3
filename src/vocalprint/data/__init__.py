"""The competition layout: reading and validating a data folder (dataset), the small synthetic demo
(demo, synth) and the BirdCLEF-sized synthetic competition (scale, families)."""
