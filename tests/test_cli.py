"""The command line, driven as a user would: a subprocess."""

import subprocess
import sys


def test_demo_prints_the_comparison_table():
    out = subprocess.run(
        [sys.executable, "-m", "sksoftmax", "demo"],
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout
    assert "SoftmaxClassifier" in out and "LogisticRegression" in out
    for metric in ["test accuracy", "test log loss", "fit time (s)", "iterations"]:
        assert metric in out
    accuracy_line = next(line for line in out.splitlines() if "test accuracy" in line)
    ours = float(accuracy_line.split()[2])
    assert ours > 0.9


def test_unknown_command_fails_cleanly():
    run = subprocess.run(
        [sys.executable, "-m", "sksoftmax", "dance"], capture_output=True, text=True
    )
    assert run.returncode != 0
    assert "invalid choice" in run.stderr
    assert "Traceback" not in run.stderr
