"""vocalprint: CPU-only bird/animal vocalisation classification pipeline."""

__version__ = "0.1.0"
