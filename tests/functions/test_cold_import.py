"""Keeping the function path light: loading functions/main.py pulls in neither the CLI, the emulator,
Redis, Starlette nor httpx; the FunctionGraph entry does not load functions_framework."""

from __future__ import annotations

import json
import subprocess
import sys

from ..conftest import ROOT

PROBE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("main", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps(sorted(sys.modules)))
"""


def _modules(path: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", PROBE, str(ROOT / path)], capture_output=True, text=True,
                         check=True, timeout=60)
    return set(json.loads(out.stdout))


def test_functions_main_imports_only_what_targets_need() -> None:
    loaded = _modules("functions/main.py")
    for heavy in ("stopline.cli", "stopline.emulator", "redis", "httpx", "stopline.idempotency.redis",
                  "huaweicloudsdkcore"):
        assert heavy not in loaded, heavy
    assert "functions_framework" in loaded


def test_functiongraph_entry_does_not_load_functions_framework() -> None:
    loaded = _modules("functions/functiongraph.py")
    assert "functions_framework" not in loaded and "flask" not in loaded and "stopline.emulator" not in loaded
