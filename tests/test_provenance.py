import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark import provenance


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("https://alice:s3cret@mlflow.example.org/api", "https://***@mlflow.example.org/api"),
        ("postgresql://u:pw@db:5432/mlflow", "postgresql://***@db:5432/mlflow"),
        ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ],
)
def test_redact_uri(uri, shown):
    assert provenance.redact_uri(uri) == shown


def test_tags_carry_versions_and_git_state():
    tags = provenance.tags()
    assert tags["gemo.git_dirty"] in {"true", "false"}
    assert tags["gemo.version.torch"] and tags["gemo.version.mlflow"]
    json.dumps(tags)  # every value is a plain string


def test_a_copy_outside_git_takes_its_commit_from_the_environment(tmp_path):
    # the package copied without .git, as into a container image or a cluster job's staging folder
    shutil.copytree(Path(provenance.__file__).parent, tmp_path / "benchmark", ignore=shutil.ignore_patterns("*.pyc"))
    probe = "from benchmark import provenance; print(*provenance.git_state())"
    # git must not find a repository above the copy (nox's session TMPDIR lies inside the checkout)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "GEMO_GIT"))} | {
        "PYTHONPATH": str(tmp_path),
        "GIT_CEILING_DIRECTORIES": str(tmp_path),
    }

    def state(**extra):
        out = subprocess.run(
            [sys.executable, "-c", probe], cwd=tmp_path, env=env | extra, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.split()

    assert state() == ["unknown", "False"]
    assert state(GEMO_GIT_SHA="0123abcd") == ["0123abcd", "False"]
    assert provenance.git_state()[0] != "0123abcd"  # inside the checkout, git itself answers


@pytest.mark.slow
def test_nothing_secret_is_logged(tmp_path, monkeypatch):
    """Secrets in the environment or in a tracking URI never reach params, tags or artifacts."""
    from benchmark.runner import run_study
    from benchmark.studies import load_study
    from benchmark.tracking import Tracker
    from tests.test_runner import make_study

    secrets = {
        "AWS_SECRET_ACCESS_KEY": "aws-SECRET-123",
        "HF_TOKEN": "hf_SECRETtoken",
        "MLFLOW_TRACKING_PASSWORD": "pw-SECRET-456",
    }
    for k, v in secrets.items():
        monkeypatch.setenv(k, v)
    study = load_study(make_study(tmp_path))
    run_study(load_study(make_study(tmp_path), ["protocol.folds=[1]", "method.variants=['emo-clap']"]), progress=False)
    tracker = Tracker(study.tracking.uri, study.experiment_name)
    runs = tracker.search("")
    assert runs
    logged = json.dumps([[r.params, r.tags] for r in runs])
    cell = tracker.runs("cell")[0]
    spec = tracker.client.download_artifacts(cell.run_id, "cell_spec.json", str(tmp_path))
    with open(spec) as f:
        logged += f.read()
    for value in secrets.values():
        assert value not in logged
