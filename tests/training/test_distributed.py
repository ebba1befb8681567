"""Training on several processes: ``accelerate launch`` runs the trainer with DDP (gloo on CPU);
the main process alone checkpoints, evaluates and saves, and a rerun resumes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_training import config_dict

pytestmark = pytest.mark.slow

LAUNCH = [
    "launch",
    "--multi_gpu",  # several processes; on a machine without GPUs they train on CPU, with gloo
    "--num_processes",
    "2",
    "--num_machines",
    "1",
    "--mixed_precision",
    "no",
    "--dynamo_backend",
    "no",
    "-m",
    "pruning_encoder",
    "train",
]


def launch(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    accelerate = shutil.which("accelerate", path=os.path.dirname(sys.executable))
    assert accelerate is not None
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [accelerate, *LAUNCH, str(config), *extra],
        capture_output=True,
        text=True,
        env=env,
        cwd=config.parent,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_two_processes_train_checkpoint_once_and_resume(
    tmp_path: Path, tiny_backbone: Path
) -> None:
    pytest.importorskip("accelerate")
    raw = config_dict(tmp_path, tiny_backbone)
    raw["training"]["logging_steps"] = 1  # type: ignore[index]
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    first = launch(config)
    run = tmp_path / "run"
    assert first.stdout.count("model: ") == 1  # the main process alone reports and saves
    metrics = json.loads((run / "metrics.json").read_text())
    # 4 steps of 4 pairs on each of 2 processes: 32 of the 16 training pairs, 2 epochs.
    assert metrics["train"]["epoch"] == pytest.approx(2.0)
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert (run / "model" / "config.json").is_file() and (run / "adapter").is_dir()
    launch(config, "--resume", "--set", "training.max_steps=6")
    state = json.loads((run / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    steps = [entry["step"] for entry in state["log_history"] if "loss" in entry]
    assert steps == [1, 2, 3, 4, 5, 6]  # 1-4 once, then 5-6: resumed, not restarted
