"""The README's Python recipes run verbatim: the library example as a script, the test recipe under
pytest, each in a fresh process from the repository root (where a user's own tests would run)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT

MARKER = "<!-- tested: tests/test_readme.py runs this block and the next verbatim -->"


def recipes() -> list[str]:
    text = (ROOT / "README.md").read_text()
    after = text[text.index(MARKER):]
    return re.findall(r"```python\n(.*?)```", after, re.S)[:2]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("STOPLINE_", "HUAWEICLOUD_"))}


def test_the_library_recipe_runs(tmp_path: Path) -> None:
    script = tmp_path / "recipe.py"
    script.write_text(recipes()[0])
    done = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=clean_env(), capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("stopped [{'build_no': ")  # the branch's running builds, listed
    assert done.stderr == ""  # a library writes no log lines of its own


def test_the_test_recipe_passes_under_pytest(tmp_path: Path) -> None:
    test_file = tmp_path / "test_recipe.py"
    test_file.write_text(recipes()[1])
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
                          cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
