"""Expectations Great Expectations does not ship, written as GE expectation classes so that the
JSON suites in quality/gx/expectations/ use them like any built-in one.

Importing this module registers them (GE keeps a registry filled by class definition), so it
must be imported before a suite that names them is loaded: quality/context.py does that.

- `expect_column_values_to_compile_as_python`: each value parses as a Python module (a teacher
  program that does not even parse is a broken sample, whatever the executor said).
- `expect_column_values_to_be_finite_numbers`: each value reads as a finite number with
  tasks.answers.parse_number ("1,200", "12%", "$3.5" count; "inf", "n/a", "" do not), and its
  magnitude stays under `max_abs` when given.
- `expect_column_quantiles_to_match_reference`: GE's expect_column_quantile_values_to_be_between
  under a name that says where its ranges come from (the drift suite fills them from the
  current snapshot). It also returns a plain bool: the 1.24 built-in returns numpy.bool,
  which GE's own validation results store cannot write as JSON under numpy 2.
- `expect_column_kl_divergence_from_reference_to_be_less_than`: GE's
  expect_column_kl_divergence_to_be_less_than whose `partition_object` is a `$PARAMETER`
  filled from the current snapshot. The built-in's renderers draw the partition from the
  suite's own kwargs and fail on a parameter (the suite page in Data Docs lost the
  expectation); this one says "the reference distribution" there, and draws the chart on
  validation pages where the parameter has a value.
- `expect_column_top_value_share_to_be_at_most`: no single value (a kind, a source) makes up
  more than `max_share` of the non-null values of a column. GE's closest built-ins either need
  a reference distribution (KL divergence) or only name the most common value.

Null values are left to expect_column_values_to_not_be_null, as GE's own map expectations do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import pandas as pd
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.core.expect_column_kl_divergence_to_be_less_than import (
    ExpectColumnKLDivergenceToBeLessThan,
)
from great_expectations.expectations.core.expect_column_quantile_values_to_be_between import (
    ExpectColumnQuantileValuesToBeBetween,
)
from great_expectations.expectations.expectation import (
    ColumnAggregateExpectation,
    ColumnMapExpectation,
)
from great_expectations.expectations.metrics import (
    ColumnAggregateMetricProvider,
    ColumnMapMetricProvider,
    column_aggregate_value,
    column_condition_partial,
)
from great_expectations.render import LegacyRendererType
from great_expectations.render.renderer.renderer import renderer

from tasks.answers import parse_number


def compiles_as_python(text: object) -> bool:
    """The text parses as a Python module. Compiling parses only: nothing runs (programs only
    ever run in the sandbox)."""
    if not isinstance(text, str):
        return False
    try:
        compile(text, "<program>", "exec")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return True


def finite_number(text: object, max_abs: float | None = None) -> bool:
    """The text reads as a finite number (within +-max_abs when given)."""
    value = parse_number(text) if isinstance(text, str | int | float) else None
    if value is None or not math.isfinite(value):
        return False
    return max_abs is None or abs(value) <= max_abs


_KL_SENTENCE = ("Kullback-Leibler (KL) divergence from the reference distribution (the "
                "current snapshot) must be lower than $threshold.")


def _sentence_template(renderer_configuration: Any, sentence: str,
                       numbers: Sequence[str]) -> Any:
    """The Data Docs sentence of an expectation: `$column <sentence>` with its params."""
    from great_expectations.render.renderer_configuration import RendererValueType

    renderer_configuration.add_param(name="column", param_type=RendererValueType.STRING)
    for name in numbers:
        renderer_configuration.add_param(name=name, param_type=RendererValueType.NUMBER)
    template = sentence
    if renderer_configuration.include_column_name:
        template = f"$column {template}"
    renderer_configuration.template_str = template
    return renderer_configuration


def _string_block(sentence: str, kwargs: dict[str, Any], params: Sequence[str]
                  ) -> list[dict[str, Any]]:
    """The same sentence for GE's legacy prescriptive renderer."""
    values = {name: kwargs.get(name) for name in ("column", *params)}
    return [{"content_block_type": "string_template", "string_template": {
        "template": f"$column {sentence}", "params": values}}]


# What GE's gallery shows for each of our expectations.
_LIBRARY_METADATA = {"maturity": "experimental", "tags": ["distillery"], "contributors": []}


class _Rendered:
    """Data Docs sentences for a custom expectation, as GE's built-ins have: `_sentence`
    returns the template (with $param placeholders) for the expectation's kwargs."""

    _params: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def _sentence(cls, kwargs: dict[str, Any]) -> str:
        raise NotImplementedError

    @classmethod
    def _prescriptive_template(cls, renderer_configuration: Any) -> Any:
        kwargs = renderer_configuration.kwargs
        return _sentence_template(renderer_configuration, cls._sentence(kwargs),
                                  [n for n in cls._params if kwargs.get(n) is not None])

    @classmethod
    @renderer(renderer_type=LegacyRendererType.PRESCRIPTIVE)
    def _prescriptive_renderer(cls, configuration: Any = None, result: Any = None,
                               runtime_configuration: dict | None = None,
                               **kwargs: Any) -> list[dict[str, Any]]:
        config = configuration or (result.expectation_config if result else None)
        kw = dict(config.kwargs) if config else {}
        return _string_block(cls._sentence(kw), kw, cls._params)


class ColumnValuesCompileAsPython(ColumnMapMetricProvider):
    condition_metric_name = "column_values.compile_as_python"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **kwargs: Any) -> pd.Series:  # noqa: N805 - GE's API
        return column.map(compiles_as_python).astype(bool)


class ExpectColumnValuesToCompileAsPython(_Rendered, ColumnMapExpectation):
    """Expect each value of the column to be Python source that compiles (parses).

    Args:
        column: the column of programs.
        mostly: the share of values that must compile (default 1).
    """

    map_metric = "column_values.compile_as_python"
    success_keys = ("mostly",)

    @classmethod
    def _sentence(cls, kwargs: dict[str, Any]) -> str:
        return "values must compile as Python (parse; nothing runs)."
    library_metadata: ClassVar[dict[str, Any]] = _LIBRARY_METADATA


class ColumnValuesFiniteNumbers(ColumnMapMetricProvider):
    condition_metric_name = "column_values.finite_numbers"
    condition_value_keys = ("max_abs",)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, max_abs: float | None = None,  # noqa: N805
                **kwargs: Any) -> pd.Series:
        return column.map(lambda v: finite_number(v, max_abs)).astype(bool)


class ExpectColumnValuesToBeFiniteNumbers(_Rendered, ColumnMapExpectation):
    """Expect each value of the column to read as a finite number, optionally bounded.

    Args:
        column: the column of answers (strings such as "1,200", "12%", "3.5").
        max_abs: when set, |value| must not exceed it (an answer of 1e30 is a unit bug).
        mostly: the share of values that must pass (default 1).
    """

    max_abs: float | None = None

    map_metric = "column_values.finite_numbers"
    success_keys = ("max_abs", "mostly")
    _params = ("max_abs",)

    @classmethod
    def _sentence(cls, kwargs: dict[str, Any]) -> str:
        bound = " of magnitude at most $max_abs" if kwargs.get("max_abs") is not None else ""
        return f"values must read as finite numbers{bound}."
    library_metadata: ClassVar[dict[str, Any]] = _LIBRARY_METADATA


class ColumnTopValueShare(ColumnAggregateMetricProvider):
    metric_name = "column.top_value_share"
    filter_column_isnull = True

    @column_aggregate_value(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **kwargs: Any) -> float | None:  # noqa: N805
        if column.empty:
            return None
        return float(column.value_counts(normalize=True).iloc[0])


class ExpectColumnTopValueShareToBeAtMost(_Rendered, ColumnAggregateExpectation):
    """Expect no single value to make up more than `max_share` of the column's non-null values
    (one kind or one source swamping a batch). A column with no non-null values passes.

    Args:
        column: the column (e.g. kind, source).
        max_share: the largest allowed share of the most common value, 0..1.
    """

    max_share: float | dict = 1.0  # a dict is a {"$PARAMETER": name} suite parameter

    metric_dependencies = ("column.top_value_share",)
    success_keys = ("max_share",)
    _params = ("max_share",)

    @classmethod
    def _sentence(cls, kwargs: dict[str, Any]) -> str:
        return "no single value may be more than a share $max_share of the non-null values."
    library_metadata: ClassVar[dict[str, Any]] = _LIBRARY_METADATA

    def _validate(self, metrics: dict, runtime_configuration: dict | None = None,
                  execution_engine: Any = None) -> dict[str, Any]:
        share = metrics.get("column.top_value_share")
        max_share = self.configuration.kwargs.get("max_share", self.max_share)
        return {"success": share is None or share <= max_share,
                "result": {"observed_value": share}}


class ExpectColumnQuantilesToMatchReference(ExpectColumnQuantileValuesToBeBetween):
    """Expect the column's quantiles to fall in ranges measured on a reference (the current
    snapshot): `quantile_ranges` as in expect_column_quantile_values_to_be_between, usually a
    `$PARAMETER` that quality/suites.py:drift_parameters fills.

    Args:
        column: a numeric column.
        quantile_ranges: {"quantiles": [...], "value_ranges": [[lo, hi], ...]}.
    """

    library_metadata: ClassVar[dict[str, Any]] = _LIBRARY_METADATA

    def _validate(self, metrics: dict, runtime_configuration: dict | None = None,
                  execution_engine: Any = None) -> dict[str, Any]:
        out = super()._validate(metrics, runtime_configuration, execution_engine)
        out["success"] = bool(out["success"])
        details = out.get("result", {}).get("details", {})
        if "success_details" in details:
            details["success_details"] = [bool(s) for s in details["success_details"]]
        return out


def _is_parameter(value: object) -> bool:
    return isinstance(value, dict) and "$PARAMETER" in value


class ExpectColumnKlDivergenceFromReferenceToBeLessThan(ExpectColumnKLDivergenceToBeLessThan):
    """Expect the KL divergence of the column's distribution from a reference distribution
    (the current snapshot's, given as a `$PARAMETER` partition_object) to be below
    `threshold`. Validation is GE's expect_column_kl_divergence_to_be_less_than.

    Args:
        column: a categorical column (quality/suites.py:categories labels nulls).
        partition_object: {"values": [...], "weights": [...]} or a `$PARAMETER`.
        threshold: the largest allowed KL divergence (nats).
        tail_weight_holdout: weight given to values the reference never had.
    """

    library_metadata: ClassVar[dict[str, Any]] = _LIBRARY_METADATA

    @classmethod
    def _prescriptive_template(cls, renderer_configuration: Any) -> Any:
        if not _is_parameter(renderer_configuration.kwargs.get("partition_object")):
            return super()._prescriptive_template(renderer_configuration)
        return _sentence_template(renderer_configuration, _KL_SENTENCE, ["threshold"])

    @classmethod
    @renderer(renderer_type=LegacyRendererType.PRESCRIPTIVE)
    def _prescriptive_renderer(cls, configuration: Any = None, result: Any = None,
                               runtime_configuration: dict | None = None,
                               **kwargs: Any) -> list[dict[str, Any]]:
        kwargs_ = configuration.kwargs if configuration else {}
        if not _is_parameter(kwargs_.get("partition_object")):
            return super()._prescriptive_renderer(configuration, result, runtime_configuration,
                                                  **kwargs)
        return _string_block(_KL_SENTENCE, kwargs_, ("threshold",))
