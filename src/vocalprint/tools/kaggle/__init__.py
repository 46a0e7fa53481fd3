"""Offline Kaggle kernel: a wheelhouse, the model bundles and a submission notebook, ready to upload.

``python -m vocalprint.tools.kaggle build --out artifacts/kaggle --bundle BUNDLE[,BUNDLE2...]`` writes::

    artifacts/kaggle/
      vocalprint-wheels/   wheels of the inference dependencies (pyproject.toml's [project]
                           dependencies, pinned by requirements.txt) for CPython ``--py`` on
                           manylinux x86-64, the vocalprint wheel, requirements.txt,
                           constraints.txt (every wheel's exact version), vocalprint-wheels.json (marker)
      vocalprint-models/   copies of the bundle folders (each with its manifest) and models.json (order)
      kernel/              vocalprint-submit.ipynb, the same code as vocalprint_submit.py,
                           kernel-metadata.json (internet off, the two datasets attached)
      build.json           sizes and timing of this build
      README.md            the upload commands

Each dataset folder has a ``dataset-metadata.json`` for ``kaggle datasets create -p FOLDER``.

Modules: :mod:`.requirements` (the package groups of pyproject.toml and the pins of
requirements.txt), :mod:`.wheels` (the wheel folder), :mod:`.kit` (the build and its command line),
:mod:`.kernel` (the kernel's own code, standard library only, copied verbatim into the notebook).
"""
from vocalprint.tools.kaggle.kernel import (COMPETITION, KERNEL, KERNEL_NB, KERNEL_PY, KERNEL_SLUG, MODELS,
                                            MODELS_INDEX, WHEELS, WHEELS_MARKER, KernelError, kernel_cells,
                                            kernel_notebook, kernel_script)
from vocalprint.tools.kaggle.kit import (PLACEHOLDER_USER, build, check_bundle, compare_species,
                                         competition_species, du, main, resolve_user)
from vocalprint.tools.kaggle.requirements import (BASE, KaggleError, canonical, classify_pins, inference_packages,
                                                  inference_requirements, left_out, read_groups, read_pins,
                                                  repo_root, requirement_name, unpinned)
from vocalprint.tools.kaggle.wheels import (KAGGLE_GLIBC, KAGGLE_PY, build_vocalprint_wheel, download_deps,
                                            platform_tags, requirement_key, wheelhouse)

__all__ = [
    "BASE", "COMPETITION", "KAGGLE_GLIBC", "KAGGLE_PY", "KERNEL", "KERNEL_NB", "KERNEL_PY", "KERNEL_SLUG", "MODELS",
    "MODELS_INDEX", "PLACEHOLDER_USER", "WHEELS", "WHEELS_MARKER", "KaggleError", "KernelError", "build",
    "build_vocalprint_wheel", "canonical", "check_bundle", "classify_pins", "compare_species",
    "competition_species", "download_deps", "du", "inference_packages", "inference_requirements",
    "kernel_cells", "kernel_notebook", "kernel_script", "left_out", "main", "platform_tags", "read_groups",
    "read_pins", "repo_root", "requirement_key", "requirement_name", "resolve_user", "unpinned", "wheelhouse",
]
