"""Metric traces: the tasks / workers / runs schema, Parquet and CSV IO, importers, profiles for
the simulator, and predictors fitted on recorded runs."""

from traces.evaluate import evaluate, learning_curve
from traces.importers import from_invocations, from_wfformat
from traces.io import TraceSet
from traces.learned import LearnedPredictor
from traces.predictors import (
    DEFAULT_CPU_EXPONENT,
    BaselinePredictor,
    UnseenFunctionWarning,
)
from traces.profiles import FixedProfiles, ProfileError, TaskProfiles, make_profiles
from traces.schema import (
    RUN_COLUMNS,
    SCHEMA_VERSION,
    TASK_COLUMNS,
    WORKER_COLUMNS,
    TraceSchemaError,
    coerce_frame,
    empty_frame,
    make_frame,
    validate_frame,
)
from traces.synthetic import FunctionTruth, synthetic_traces

__all__ = [
    "DEFAULT_CPU_EXPONENT",
    "RUN_COLUMNS",
    "SCHEMA_VERSION",
    "TASK_COLUMNS",
    "WORKER_COLUMNS",
    "BaselinePredictor",
    "FixedProfiles",
    "FunctionTruth",
    "LearnedPredictor",
    "ProfileError",
    "TaskProfiles",
    "TraceSchemaError",
    "TraceSet",
    "UnseenFunctionWarning",
    "coerce_frame",
    "empty_frame",
    "evaluate",
    "from_invocations",
    "from_wfformat",
    "learning_curve",
    "make_frame",
    "make_profiles",
    "synthetic_traces",
    "validate_frame",
]
