"""Report commands start without torch or transformers: they read runs, they never build a model.

Each command runs in a fresh interpreter (as a user would run it) on a real simulated store; the child
reports which heavy modules it loaded. Loading torch and transformers costs seconds of every report's
start-up, which is most of a report's time on a large store (``reports/perf/reports_bench.json``).
"""

import json
import subprocess
import sys

import pytest

from tests.reports.test_mechanism import write_pair

CHILD = """
import json, sys
from benchmark.cli import main
code = main(sys.argv[1:])
heavy = sorted(m for m in ("torch", "transformers", "submitit", "optuna") if m in sys.modules)
print("@@" + json.dumps({"code": code, "heavy": heavy}))
"""


@pytest.mark.parametrize(
    "kind", ["table", "claims", "ablation", "bias", "embeddings", "curves", "cross-corpus", "mechanism", "compare"]
)
def test_report_command_loads_no_model_library(kind, tmp_path, sim_store):
    uri, _, _ = sim_store
    study, control = write_pair(tmp_path, uri=uri)
    args = ["report", kind, str(study), *([str(control)] if kind == "compare" else []), "--out", str(tmp_path / "out")]
    if kind not in ("table", "curves", "embeddings"):
        args += ["--n-boot", "50"]
    proc = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.rsplit("@@", 1)[1])
    assert result == {"code": 0, "heavy": []}
