"""What a researcher touches: TOML experiment configs, the `faasdag` CLI, sweeps, reports and
plots."""
