"""MLflow at the edge: one parameter batcher for every run srarena logs."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_log_params_batches_past_mlflows_limit(tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    from srarena.harness import tracking

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    params = {f"group{i // 50}.key{i}": str(i) for i in range(257)}  # > 2 batches of 100
    exp = mlflow.create_experiment("t", artifact_location=(tmp_path / "a").as_uri())
    with mlflow.start_run(experiment_id=exp) as run:
        tracking.log_params(params)
    assert MlflowClient(uri).get_run(run.info.run_id).data.params == params
    other = MlflowClient(uri).create_run(exp)  # an explicit run id, no active run
    tracking.log_params({"a": 1, "b": "x"}, run_id=other.info.run_id)
    assert MlflowClient(uri).get_run(other.info.run_id).data.params == {"a": "1", "b": "x"}


def test_no_other_module_chunks_mlflow_params_itself():
    offenders = [p.relative_to(REPO).as_posix() for p in sorted((REPO / "harness").rglob("*.py"))
                 if p.name != "tracking.py" or p.parent.name != "harness"
                 if re.search(r"mlflow\.log_params\(", p.read_text())]
    assert offenders == [], f"log parameters with srarena.harness.tracking.log_params: {offenders}"
