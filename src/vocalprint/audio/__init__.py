"""Audio in: decoding with checks (decode), the log-Mel front end (mel, stft) and synthetic field mixes
of focal calls over background stretches (mix). Imports config and core only."""
