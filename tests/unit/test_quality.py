"""The house rules CI enforces: mypy --strict on src/, ruff on src/ and tests/."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.timeout(300)
def test_mypy_strict_is_clean():
    out = _run(sys.executable, "-m", "mypy", "--strict", "src")
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.timeout(120)
def test_ruff_is_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or "ruff"
    out = _run(ruff, "check", "src", "tests", "examples")
    assert out.returncode == 0, out.stdout + out.stderr
