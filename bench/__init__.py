"""stopline benchmarks: run with `uv run python -m bench` (see README "Performance")."""
