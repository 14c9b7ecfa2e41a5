"""What a search tries: spaces, strategies and plans. Pure: no store, no Keras.

As keras-tuner separates its oracle (what to try next) from its tuner (how to train it),
this module only turns a space, a strategy and a budget into trial configs; the runner
(lsc_core/search/runner.py) makes them runs in the store and trains them. A search plans
all its trials up front, deterministically (random search is seeded), so the plan can be
recomputed at any time from the stored spec.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import math
import random
from dataclasses import dataclass
from typing import Any

from .. import layers as registry  # each layer kind says what a search can vary in it
from ..config import ConfigError, LayerSpec, RunConfig, parse_json, preset, typed_fields, validate
from ..runs import Run

__all__ = ["STRATEGIES", "CONFIG_FIELDS", "GRID_LOG_POINTS", "MAX_TRIALS", "MAX_DRAWS_PER_TRIAL",
           "MAX_CHOICES", "BATCH_SIZES", "Param", "SearchSpace", "check_space", "apply_values", "param_value",
           "study_space", "SearchSpec", "default_search_name", "check_spec", "plan_values", "plan_trials", "LayerChoice",
           "searchable_layers", "space_from_form", "trial_config_dict"]

STRATEGIES = ("random", "grid")
CONFIG_FIELDS = ("learning_rate", "batch_size", "optimizer", "momentum")  # run-level choices
GRID_LOG_POINTS = 3  # a log-uniform range becomes this many log-spaced values in a grid
MAX_TRIALS = 10_000  # more trials than anyone trains; bounds the plan a search computes on every view
# A random draw repeats a combination only once unseen ones are rare: after this many
# draws per trial it takes what it gets, so no space (e.g. a log range too narrow for
# distinct 3-digit values) can keep it drawing forever.
MAX_DRAWS_PER_TRIAL = 100
MAX_CHOICES = 100  # values per searched setting, and settings per space: each is validated on every check


@dataclass(frozen=True)
class Param:
    """One searched setting: a layer's filters/units/rate, or a run-level setting.

    `layer` is the 1-based position in the base network (None for a run-level setting
    such as learning_rate); values come from `choices`, or from `log_range` (low, high),
    sampled log-uniformly (learning rates).
    """

    name: str
    layer: int | None = None
    field: str | None = None  # for run-level settings: the RunConfig field
    choices: tuple = ()
    log_range: tuple[float, float] | None = None

    def values(self) -> tuple:
        """The grid values: the choices, or GRID_LOG_POINTS log-spaced points of the range."""
        if self.log_range is None:
            return self.choices
        low, high = (math.log10(v) for v in self.log_range)
        steps = GRID_LOG_POINTS - 1
        return tuple(float(f"{10 ** (low + (high - low) * i / steps):.3g}") for i in range(GRID_LOG_POINTS))

    def sample(self, rng: random.Random):
        if self.log_range is None:
            return rng.choice(self.choices)
        low, high = (math.log10(v) for v in self.log_range)
        return float(f"{10 ** rng.uniform(low, high):.3g}")  # 3 significant digits: readable, enough


@dataclass(frozen=True)
class SearchSpace:
    """The base network every trial starts from and the settings varied over it."""

    base: RunConfig
    params: tuple[Param, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"base": self.base.to_dict(), "params": [_param_dict(p) for p in self.params]}

    @classmethod
    def from_dict(cls, data: dict[str, Any], check: bool = True) -> "SearchSpace":
        """Parse and check a space; `base` may be a preset name or a RunConfig object.

        check=False only parses: for a space stored by create_search, checked then.
        """
        if not isinstance(data, dict) or not isinstance(data.get("params"), list):
            raise ConfigError("a search space is an object with 'base' and a list of 'params'")
        if len(data["params"]) > MAX_CHOICES:
            raise ConfigError(f"a search space may search at most {MAX_CHOICES} settings, "
                              f"not {len(data['params']):,}")
        base = data.get("base", "seed-part2")
        base = preset(base) if isinstance(base, str) else RunConfig.from_dict(base)
        params = tuple(_parse_param(item, number) for number, item in enumerate(data["params"], start=1))
        space = cls(base, params)
        return check_space(space) if check else space

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str | bytes) -> "SearchSpace":
        """A space from JSON text or UTF-8 bytes (a file as read), checked."""
        return cls.from_dict(parse_json(text, "search space"))

    @property
    def grid_size(self) -> int:
        return math.prod(len(p.values()) for p in self.params)

    @property
    def distinct_combinations(self) -> float:
        """How many different combinations there are (math.inf with a log range); repeats count once."""
        if any(p.log_range is not None for p in self.params):
            return math.inf
        return math.prod(len(set(p.choices)) for p in self.params)


def _param_dict(param: Param) -> dict[str, Any]:
    data = {k: v for k, v in dataclasses.asdict(param).items() if v not in (None, ())}
    for key in ("choices", "log_range"):
        if key in data:
            data[key] = list(data[key])
    return data


def _parse_param(item: Any, number: int) -> Param:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise ConfigError(f"search parameter {number}: expected an object with a 'name'")
    item = typed_fields(Param, item, exclude=("choices",), prefix=f"search parameter {number}: ")
    choices = item.get("choices") or ()
    if not isinstance(choices, (list, tuple)) or len(choices) > MAX_CHOICES:
        raise ConfigError(f"search parameter {number}: choices must be a list of at most {MAX_CHOICES} values")
    if any(isinstance(value, float) and not math.isfinite(value) for value in choices):
        raise ConfigError(f"search parameter {number}: choices must be finite numbers or words")
    return Param(**{**item, "choices": tuple(choices)})


def check_space(space: SearchSpace) -> SearchSpace:
    """The space itself if every parameter names a real setting with usable values; else ConfigError."""
    if not space.params:
        raise ConfigError("the search space has no parameters; add at least one")
    names = [p.name for p in space.params]
    if len(set(names)) != len(names):
        raise ConfigError("search parameter names must be unique")
    for param in space.params:
        where = f"search parameter {param.name!r}"
        if param.layer is not None:
            if not 1 <= param.layer <= len(space.base.layers):
                raise ConfigError(f"{where}: the base network has no layer {param.layer}")
            kind = space.base.layers[param.layer - 1].kind
            if registry.searchable(kind) is None:
                raise ConfigError(f"{where}: layer {param.layer} is {kind}, which has nothing to search")
        elif param.field not in CONFIG_FIELDS:
            raise ConfigError(f"{where}: give a layer position or a field from {', '.join(CONFIG_FIELDS)}")
        if (param.log_range is None) == (not param.choices):
            raise ConfigError(f"{where}: give either choices or a log_range, not both or neither")
        _check_choices(where, param.choices)
        if param.log_range is not None and not (len(param.log_range) == 2 and 0 < param.log_range[0]
                                                 < param.log_range[1]):
            raise ConfigError(f"{where}: log_range must be [low, high] with 0 < low < high")
    # Every value must build a valid network (e.g. no dropout rate of 1): try each one
    # with the other parameters at their first value.
    first = {p.name: p.values()[0] for p in space.params}
    for param in space.params:
        for value in param.values():
            try:
                validate(apply_values(space, {**first, param.name: value}))
            except ConfigError as exc:
                raise ConfigError(f"search parameter {param.name!r} = {value!r}: {exc}") from None
    return space


def _check_choices(where: str, choices: tuple) -> None:
    """Choices are single values (numbers or words), each given once."""
    if any(isinstance(value, (list, dict)) for value in choices):
        raise ConfigError(f"{where}: each choice must be a single number or word")
    repeated = [value for position, value in enumerate(choices) if value in choices[:position]]
    if repeated:
        # A repeat would be tried twice (grid) or make the random draw count it as another option.
        raise ConfigError(f"{where}: choice {repeated[0]!r} is listed more than once; give each value once")


def apply_values(space: SearchSpace, values: dict[str, Any]) -> RunConfig:
    """The base config with the given parameter values set."""
    layers = list(space.base.layers)
    changes: dict[str, Any] = {}
    for param in space.params:
        value = values[param.name]
        if param.layer is None:
            changes[param.field] = value
            continue
        layers[param.layer - 1] = _with_searched_value(layers[param.layer - 1], value)
    return space.base.replace(layers=tuple(layers), **changes)


def _with_searched_value(layer: LayerSpec, value) -> LayerSpec:
    """The layer with its searched parameter (filters, units, rate...) set to `value`."""
    return LayerSpec(layer.kind, {**layer.params, registry.searchable(layer.kind).param: value})


def param_value(param: Param, config: RunConfig):
    """The value a config has for a searched parameter."""
    if param.layer is None:
        return getattr(config, param.field)
    layer = config.layers[param.layer - 1]
    dimension = registry.searchable(layer.kind)
    return layer.params.get(dimension.param) if dimension is not None else None


def study_space(base: str = "seed-part2") -> SearchSpace:
    """The study's space: filters of the four convs and the dense units of seed-part2's layout."""
    config = preset(base)
    choices = iter([(16, 32, 64), (16, 32, 64), (32, 64, 128), (32, 64, 128)])
    params, conv = [], 0
    for position, layer in enumerate(config.layers, start=1):
        if layer.kind == "conv2d":
            conv += 1
            params.append(Param(f"conv{conv}_filters", layer=position, choices=next(choices)))
        elif layer.kind == "dense":
            params.append(Param("dense_units", layer=position, choices=(64, 128, 256)))
    return SearchSpace(config, tuple(params))


# -- a search: space + strategy + budget ---------------------------------------------------
@dataclass(frozen=True)
class SearchSpec:
    space: SearchSpace
    strategy: str = "random"
    trials: int = 10  # random: trials drawn; grid: at most this many grid points (None: all)
    epochs: int = 5  # per trial
    label_mode: str = "coarse"
    limit: int | None = None  # train each trial on the first N images
    seed: int = 0  # of the random draw (each trial trains with the base config's seed)

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["space"] = self.space.to_dict()
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, check: bool = True) -> "SearchSpec":
        """Parse a spec; check=False trusts its space (a stored spec, checked when it was created)."""
        data = json.loads(text)
        data["space"] = SearchSpace.from_dict(data["space"], check=check)
        return cls(**data)


MAX_NAME_PARAMS = 3  # settings a default search name lists before "+N more"


def default_search_name(spec: SearchSpec) -> str:
    """A search's name when the person gives none: strategy, base network, labels and what it
    varies, e.g. 'random, seed-part2 coarse: conv1_filters, conv2_filters, dense_units +2 more'."""
    names = [p.name for p in spec.space.params]
    varied = ", ".join(names[:MAX_NAME_PARAMS]) + (f" +{len(names) - MAX_NAME_PARAMS} more"
                                                   if len(names) > MAX_NAME_PARAMS else "")
    return f"{spec.strategy}, {spec.space.base.display_name()} {spec.label_mode}: {varied or 'nothing varied'}"


def check_spec(spec: SearchSpec) -> SearchSpec:
    """The spec itself if its strategy and budget are usable; else ConfigError."""
    if spec.strategy not in STRATEGIES:
        raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}, got {spec.strategy!r}")
    if spec.trials is not None and (not isinstance(spec.trials, int) or not 1 <= spec.trials <= MAX_TRIALS):
        raise ConfigError(f"trials must be a whole number from 1 to {MAX_TRIALS:,}, got {spec.trials!r}")
    if spec.strategy == "random" and spec.trials is None:
        raise ConfigError("a random search needs a number of trials")
    check_space(spec.space)
    if spec.strategy == "grid" and spec.trials is None and spec.space.grid_size > MAX_TRIALS:
        raise ConfigError(f"the grid has {spec.space.grid_size:,} points, more than {MAX_TRIALS:,}: "
                          "give fewer values or a number of trials")
    validate(spec.space.base.replace(epochs=spec.epochs, label_mode=spec.label_mode, limit=spec.limit))
    return spec


def plan_values(spec: SearchSpec) -> list[dict[str, Any]]:
    """Each trial's parameter values, in order: the grid's product, or seeded random draws."""
    params = spec.space.params
    if spec.strategy == "grid":
        # islice: the first `trials` points without building a product that may be huge.
        combos = itertools.islice(itertools.product(*(p.values() for p in params)), spec.trials)
        return [dict(zip([p.name for p in params], combo)) for combo in combos]
    rng = random.Random(spec.seed)
    drawn: list[dict[str, Any]] = []
    seen: set[tuple] = set()
    distinct = spec.space.distinct_combinations
    max_draws = spec.trials * MAX_DRAWS_PER_TRIAL
    draws = 0
    while len(drawn) < spec.trials:
        values = {p.name: p.sample(rng) for p in params}
        draws += 1
        # A repeated combination teaches nothing new: draw again while unseen ones remain
        # (and the draws are not spent: a narrow log range has few distinct values).
        if _key(values) in seen and len(seen) < distinct and draws < max_draws:
            continue
        seen.add(_key(values))
        drawn.append(values)
    return drawn


def _key(values: dict) -> tuple:
    return tuple(sorted(values.items()))


def plan_trials(spec: SearchSpec, search_id: int) -> list[RunConfig]:
    """Every trial's RunConfig, named search<ID>-trial<N> (N from 1)."""
    return [apply_values(spec.space, values).replace(
        epochs=spec.epochs, label_mode=spec.label_mode, limit=spec.limit, preset=None,
        name=f"search{search_id}-trial{number}") for number, values in enumerate(plan_values(spec), start=1)]


# -- building a space from the dashboard's form -----------------------------------------------
BATCH_SIZES = (16, 32, 64, 128, 256)


@dataclass(frozen=True)
class LayerChoice:
    """A searchable layer of a base network, as the form shows it."""

    position: int  # 1-based
    kind: str
    label: str  # e.g. "layer 1: conv2d 32 3x3 relu"
    options: tuple  # values offered
    default: tuple  # values preselected


def searchable_layers(base: RunConfig) -> list[LayerChoice]:
    """Layers whose filters/units/rate can be searched, with defaults that halve, keep and
    double each size (for seed-part2 that is exactly the study's space)."""
    choices = []
    for position, layer in enumerate(base.layers, start=1):
        dimension = registry.searchable(layer.kind)
        if dimension is None:
            continue
        value = layer.params[dimension.param]
        if dimension.spread:
            default = tuple(v for v in (value // 2, value, value * 2) if v >= 1)
        else:
            default = (value,)
        options = tuple(sorted(set(dimension.options) | set(default)))
        choices.append(LayerChoice(position, layer.kind, f"layer {position}: {layer.describe()}", options, default))
    return choices


def space_from_form(base: RunConfig, layer_values: dict[int, list], batch_sizes: list, optimizers: list,
                    learning_rate: tuple[float, float] | None) -> SearchSpace:
    """A space from the form: a setting with one value is fixed in the base, several are searched.

    ConfigError names the setting left without a value or a space with nothing to vary.
    """
    layers = list(base.layers)
    params: list[Param] = []
    counts: dict[str, int] = {}
    for choice in searchable_layers(base):
        values = sorted(layer_values.get(choice.position) or ())
        if not values:
            raise ConfigError(f"{choice.label}: choose at least one value")
        if len(values) == 1:
            layers[choice.position - 1] = _with_searched_value(layers[choice.position - 1], values[0])
            continue
        counts[choice.kind] = counts.get(choice.kind, 0) + 1
        dimension = registry.searchable(choice.kind)
        params.append(Param(f"{dimension.prefix}{counts[choice.kind]}_{dimension.param}", layer=choice.position,
                            choices=tuple(values)))
    if len([c for c in searchable_layers(base) if c.kind == "dense"]) == 1:
        params = [dataclasses.replace(p, name="dense_units") if p.name == "dense1_units" else p for p in params]
    fixed: dict[str, Any] = {}
    for field_name, values in (("batch_size", sorted(batch_sizes)), ("optimizer", list(optimizers))):
        if not values:
            raise ConfigError(f"{field_name.replace('_', ' ')}: choose at least one value")
        if len(values) == 1:
            fixed[field_name] = values[0]
        else:
            params.append(Param(field_name, field=field_name, choices=tuple(values)))
    if learning_rate is not None:
        params.append(Param("learning_rate", field="learning_rate", log_range=tuple(learning_rate)))
    if not params:
        raise ConfigError("nothing to search: give some setting two or more values")
    return check_space(SearchSpace(base.replace(layers=tuple(layers), **fixed), tuple(params)))


def trial_config_dict(run: Run) -> dict:
    """A trial's config for the Build page: its own, without the trial's name."""
    return run.config.replace(name=None).to_dict()
