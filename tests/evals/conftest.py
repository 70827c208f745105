from __future__ import annotations

from pathlib import Path

import pytest

from tests.evals.helpers import EvalRepo, make_eval_repo


@pytest.fixture
def eval_repo(tmp_path: Path) -> EvalRepo:
    return make_eval_repo(tmp_path)
