"""The one registry of models: name -> family, the stages it builds, how it trains and predicts,
and what its bundle holds.

The CLI's ``--model`` choices, ``make help``, ``make bench``'s default list and the model
bundles all read :data:`MODELS`; nothing else lists model names. Training and predictor
building go through :func:`train` and :func:`predictor`, which dispatch on the registry to the
stage wiring of :mod:`vocalprint.pipeline`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from vocalprint.config import Config, ConfigError
from vocalprint.data.dataset import Dataset

log = logging.getLogger(__name__)
_WARNED: set[tuple[str, str, str]] = set()

TOKEN_CHAIN = ("mels", "tokens", "w2v", "features")
MELSTATS_CHAIN = ("mels", "windows", "mstats")  # Mel frames and windows: no codebook, no Word2Vec
TEACHER_CHAIN = ("teacher-model", "teacher", "windows", "tfeatures")  # no Mel frames, no tokens
STUDENT_CHAIN = TEACHER_CHAIN + ("mels", "tmixes", "student", "pseudo")


@dataclass(frozen=True)
class ModelSpec:
    """One model of the registry.

    ``family``: the package that owns its predictor (tokens, teacher, student, serving).
    ``stages``: the artifact stages (folders under ``artifacts/``) it may build, in order (``pseudo``
    only with ``distill.rounds`` > 0).
    ``bundle``: what its bundle carries besides the pickled predictor (``none``, ``tflite``
    model files, ``members``' bundles). ``bench``: in ``make bench``'s default list.
    ``precision``: the students' exported network it runs (``int8`` or ``fp32``).
    ``kind``: what a teacher model outputs (``zeroshot``: the teacher's own logits where it names the
    species, its probe elsewhere; ``probe``: the probe everywhere); empty for the other families.
    ``file_max``: a blend of each species' maximum over the file that the model's own predictor
    applies (part of a frozen recipe, so it travels in the bundle; ``submit.file_max`` still
    applies on top).
    """

    name: str
    family: str
    summary: str
    stages: tuple[str, ...]
    bundle: str = "none"
    bench: bool = False
    options: tuple[tuple[str, Any], ...] = ()  # config overrides that define this model
    file_max: float = 0.0
    precision: str = "int8"
    kind: str = ""

    def __post_init__(self) -> None:
        if self.precision not in ("int8", "fp32"):
            raise ValueError(f"model {self.name}: precision {self.precision!r}, use 'int8' or 'fp32'")
        if (self.family == "teacher") != (self.kind in ("zeroshot", "probe")):
            raise ValueError(f"model {self.name}: kind {self.kind!r}; a teacher model is 'zeroshot' or 'probe', "
                             "the others have none")

    def configure(self, cfg: Config) -> Config:
        """``cfg`` with this model's defining overrides (e.g. ``tokens-cnn``: the token front).

        They are pinned: a model is a frozen recipe, so a configuration (YAML file, ``--set``) that
        sets one of them to another value than the project default is overruled, with a warning
        that names the setting, since dropping it silently would run what the user did not ask for.
        """
        base = Config()
        for section, fields in self.options:
            for key, value in fields:
                mine = getattr(getattr(cfg, section), key)
                if mine != value and mine != getattr(getattr(base, section), key):
                    _warn_pinned(self.name, f"{section}.{key}", mine, value)
            cfg = replace(cfg, **{section: replace(getattr(cfg, section), **dict(fields))})
        return cfg


def _warn_pinned(model: str, key: str, mine: Any, pinned: Any) -> None:
    """Once per process and setting: the user's ``key`` is overruled by the model's pinned value."""
    if (model, key, repr(mine)) in _WARNED:
        return
    _WARNED.add((model, key, repr(mine)))
    log.warning("model %s pins %s=%s: your configuration's %s is ignored for it (a model that does not "
                "pin it, e.g. student or ensemble, takes any value)", model, key, _show(pinned), _show(mine))


def _show(v: Any) -> str:
    return ",".join(map(str, v)) if isinstance(v, tuple) else str(v)


def _spec(name, family, summary, stages, **kw) -> tuple[str, ModelSpec]:
    return name, ModelSpec(name, family, summary, tuple(stages), **kw)


MODELS: dict[str, ModelSpec] = dict([
    _spec("loudness", "tokens", "species-blind baseline: the window's mean Mel power", (), bench=True),
    _spec("melstats-linear", "tokens", "mean and std of each Mel band, logistic regression",
          MELSTATS_CHAIN + ("train",), bench=True),
    _spec("melstats-lgbm", "tokens", "mean and std of each Mel band, LightGBM", MELSTATS_CHAIN + ("train",)),
    _spec("stsg-linear", "tokens", "pooled Word2Vec token vectors, logistic regression (the published form)",
          TOKEN_CHAIN + ("train",), bench=True),
    _spec("stsg-lgbm", "tokens", "pooled Word2Vec token vectors, LightGBM", TOKEN_CHAIN + ("train",)),
    _spec("tokens-nb", "tokens", "frame-level naive-Bayes tables of four codebooks' tokens", ("nb",), bench=True),
    _spec("birdnet-zeroshot", "teacher", "BirdNET V2.4's own logits; its probe for species it cannot name",
          TEACHER_CHAIN + ("train",), kind="zeroshot", bundle="tflite", bench=True,
          options=(("teacher", (("model", "birdnet"),)),)),
    _spec("birdnet-probe", "teacher", "logistic regression on BirdNET's 1,024-d embedding",
          TEACHER_CHAIN + ("train",), kind="probe", bundle="tflite", bench=True,
          options=(("teacher", (("model", "birdnet"),)),)),
    _spec("perch-zeroshot", "teacher", "Perch v2's own logits (PERCH_DIR); its probe for the rest",
          TEACHER_CHAIN + ("train",), kind="zeroshot", bundle="tflite",
          options=(("teacher", (("model", "perch"),)),)),
    _spec("perch-probe", "teacher", "logistic regression on Perch v2's embedding",
          TEACHER_CHAIN + ("train",), kind="probe", bundle="tflite",
          options=(("teacher", (("model", "perch"),)),)),
    _spec("student", "student", "distilled log-Mel CNNs (distill.members), int8 TFLite, +/- shifted windows",
          STUDENT_CHAIN, bundle="tflite", bench=True),
    _spec("student-fp32", "student", "the same students as float32 TFLite",
          STUDENT_CHAIN, bundle="tflite", precision="fp32"),
    # the students' cheap form, built for the recipe below: one member on the teacher's cache every 2 s
    # (the focal clips' cache is then the probe's own, the soundscapes cost half) and at most 1,000,000
    # window presentations (6 epochs of about 180,000 training windows at the 200,000-window cap; on
    # small sets it does not bind)
    _spec("student-2s", "student", "one distilled student on the teacher's 2-s cache, 1M-window budget "
          "(recommended's member for the species BirdNET cannot name)", STUDENT_CHAIN, bundle="tflite",
          options=(("teacher", (("stride_s", 2.0),)), ("distill", (("members", 1), ("window_budget", 1_000_000))))),
    _spec("tokens-cnn", "student", "the student's CNN over 32 band-group token codebooks (K = 16 each)",
          STUDENT_CHAIN, bundle="tflite", bench=True,
          options=(("distill", (("front", "tokens"),)),)),
    _spec("ensemble", "serving", "submit.members averaged (submit.weights; submit.combine mean or logit)", (),
          bundle="members"),
    # the frozen recipe chosen on dev-wide (docs/results.md, "The recommended submission"): BirdNET's own
    # logits for the species it names; for the rest half its probe's, a quarter tokens-nb's and a
    # quarter student-2s's probabilities; then a fifth of each species' maximum over the file blended
    # into every window
    _spec("recommended", "serving", "frozen recipe: birdnet-zeroshot; for the species BirdNET cannot name "
          "its probe, tokens-nb and student-2s; file maxima", (), bundle="members", file_max=0.2,
          options=(("submit", (("members", ("birdnet-zeroshot", "tokens-nb", "student-2s")),
                               ("weights", ("1", "0", "0")), ("weights_unnamed", ("0.5", "0.25", "0.25")),
                               ("combine", "mean"))),)),
])

NAMES: tuple[str, ...] = tuple(MODELS)
BENCH_DEFAULT: tuple[str, ...] = tuple(n for n, s in MODELS.items() if s.bench)


def variant(cfg: Config, item: str) -> tuple[str, Config]:
    """``name@section.field=value@...`` -> (name, ``cfg`` with those overrides): one model under
    other settings, e.g. a ``make bench`` row of BirdNET at its former stride and batch beside
    today's (``birdnet-zeroshot@teacher.infer_stride_s=1@teacher.chunk_batch=1``)."""
    from vocalprint.config import override

    name, *sets = item.split("@")
    get(name)
    for s in sets:
        k, eq, v = s.partition("=")
        if not eq:
            raise ConfigError(f"{item!r}: {s!r} is not section.field=value")
        cfg = override(cfg, k.strip(), v.strip())
    return name, cfg


def variant_items(text: str) -> list[str]:
    """A comma-separated list of models and variants (``make bench``'s ``BENCH_MODELS``) -> its
    items. A comma starts a new item only before a model name, so a variant's value may itself be a
    list: ``tokens-nb@nb.views=logmel,pcen,student`` is two items, ``tokens-nb@nb.views=logmel,pcen``
    and ``student``."""
    items: list[str] = []
    for piece in text.split(","):
        if items and "@" in items[-1] and piece.split("@")[0].strip() not in MODELS:
            items[-1] += "," + piece
        else:
            items.append(piece.strip())
    return [i for i in items if i]


def get(name: str) -> ModelSpec:
    """The registry entry of ``name``; a :class:`ConfigError` listing the models otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; choose from {', '.join(NAMES)}") from None


def _builders() -> dict[str, tuple[Callable, Callable]]:
    from vocalprint import pipeline as P

    return {"tokens": (P.train_tokens, P.tokens_predictor), "teacher": (P.train_teacher, P.teacher_predictor),
            "student": (P.train_student, P.student_predictor)}


def train(cfg: Config, ds: Dataset, root: Path, name: str) -> Path:
    """Build every stage ``name`` needs that is not cached; returns its last stage folder (the
    artifacts root for models that train nothing)."""
    spec = get(name)
    if spec.bundle == "members":
        cfg = spec.configure(cfg)
        _check_members(cfg)
        return [train(cfg, ds, root, m) for m in cfg.submit.members][-1]
    return _builders()[spec.family][0](spec.configure(cfg), ds, root, spec)


def predictor(cfg: Config, ds: Dataset, root: Path, name: str):
    """A ready predictor for ``name``, training whatever it needs that is not cached."""
    from vocalprint.tokens.heads import prior

    spec = get(name)
    if spec.bundle == "members":
        from vocalprint.serving.ensemble import EnsemblePredictor

        cfg = spec.configure(cfg)
        _check_members(cfg)
        return EnsemblePredictor([predictor(cfg, ds, root, m) for m in cfg.submit.members],
                                 weights=[float(w) for w in cfg.submit.weights], combine=cfg.submit.combine,
                                 weights_unnamed=[float(w) for w in cfg.submit.weights_unnamed],
                                 file_max=spec.file_max, label=None if name == "ensemble" else name)
    pred = _builders()[spec.family][1](spec.configure(cfg), ds, root, spec)
    pred.prior = prior(ds.label_matrix())  # the members' prior serves an ensemble
    return pred


def members_of(cfg: Config, name: str) -> tuple[str, ...]:
    """The models ``name`` averages (its recipe's, or ``submit.members`` for ``ensemble``); () for
    a model that averages nothing."""
    spec = get(name)
    return tuple(spec.configure(cfg).submit.members) if spec.bundle == "members" else ()


def _check_members(cfg: Config) -> None:
    if not cfg.submit.members:
        raise ConfigError("MODEL=ensemble needs submit.members (e.g. --set submit.members=tokens-nb,student)")
    if any(get(m).bundle == "members" for m in cfg.submit.members):
        raise ConfigError("an ensemble's members cannot be ensembles themselves")


def help_table() -> str:
    """``name  family  summary`` lines for ``make help`` and ``vocalprint models``."""
    w = max(map(len, NAMES))
    return "\n".join(f"  {s.name:<{w}}  {s.family:<8} {s.summary}" for s in MODELS.values())
