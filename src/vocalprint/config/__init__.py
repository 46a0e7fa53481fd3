"""The configuration: one tree of frozen dataclasses, built once by the CLI and passed down.

This package imports nothing else of vocalprint. ``from vocalprint import config as C`` gives
the whole public surface: the sections, :class:`Config`, :func:`load`, :func:`override`,
:func:`fingerprint`, :func:`to_dict`, :func:`upgrade`, :func:`frames_per_window`, :class:`ConfigError`.
"""
from .errors import ConfigError, check_choice
from .load import fingerprint, frames_per_window, load, override, to_dict, upgrade
from .nb import NBConfig
from .schema import (AudioConfig, Config, FeaturesConfig, LgbmConfig, LinearConfig, MelConfig, RunConfig,
                     SubmitConfig, TeacherConfig, TokensConfig, TrainConfig, W2VConfig)
from .student import StudentConfig

__all__ = ["AudioConfig", "Config", "ConfigError", "FeaturesConfig", "LgbmConfig", "LinearConfig", "MelConfig",
           "NBConfig", "RunConfig", "StudentConfig", "SubmitConfig", "TeacherConfig", "TokensConfig", "TrainConfig",
           "W2VConfig", "check_choice", "fingerprint", "frames_per_window", "load", "override", "to_dict", "upgrade"]
