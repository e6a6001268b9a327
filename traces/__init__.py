"""Metric traces: the tasks / workers / runs schema, Parquet and CSV IO, importers, profiles for
the simulator, and predictors fitted on recorded runs."""
