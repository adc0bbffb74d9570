"""stopline benchmarks: run with `uv run --group dev python -m bench` (see README "Performance")."""
