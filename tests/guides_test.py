"""Run every guide in guides/ in quick mode on the current Keras backend.

Each guide runs in its own Python process, as a reader would run it, with
`KERAS_NEXUS_QUICK=1`, a fresh working directory and its own
`KERAS_NEXUS_OUTPUT_DIR`. A guide announces each file it writes with a
line `Wrote <path>` on stdout (the convention in guides/README.md). The
test checks that every announced file exists inside the output directory
and is not empty, and that the files listed in `EXPECTED_OUTPUTS` are
among them. New guides are picked up automatically.
"""

import os
import pathlib
import re
import subprocess
import sys

import keras
import pytest

REPOSITORY_DIR = pathlib.Path(__file__).resolve().parent.parent
GUIDES_DIR = REPOSITORY_DIR / "guides"
GUIDES = sorted(GUIDES_DIR.glob("*.py"))

# Files that a guide must write, by guide file name. Guides not listed here
# must still announce at least one output.
EXPECTED_OUTPUTS = {
    "distributed_training.py": ["distributed_training.json"],
    "nexus_rank_dense.py": ["nexus_rank_dense_growth.png"],
    "train_nexusformer.py": [
        "train_nexusformer_loss.png",
        "train_nexusformer_samples.txt",
        "train_nexusformer.keras",
    ],
    "progressive_scaling.py": [
        "progressive_scaling.png",
        "metrics.json",
        "loss.png",
        "model.keras",
    ],
}

OUTPUT_LINE = re.compile(r"^Wrote (.+)$", re.MULTILINE)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"

# A guard against a hung process, far above the quick-mode run time of any
# guide, not a performance limit.
GUIDE_TIMEOUT_SECONDS = 900


def run_guide(guide, working_dir, output_dir):
    environment = dict(os.environ)
    environment.update(
        {
            "KERAS_BACKEND": keras.config.backend(),
            "KERAS_NEXUS_QUICK": "1",
            "KERAS_NEXUS_OUTPUT_DIR": str(output_dir),
            "MPLBACKEND": "Agg",
            # Import the checkout under test, even without an editable
            # install.
            "PYTHONPATH": os.pathsep.join(
                filter(
                    None, [str(REPOSITORY_DIR), os.environ.get("PYTHONPATH")]
                )
            ),
        }
    )
    try:
        return subprocess.run(
            [sys.executable, str(guide)],
            cwd=working_dir,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=GUIDE_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired as error:
        output = error.stdout or ""
        if isinstance(output, bytes):
            output = output.decode("utf-8", "replace")
        pytest.fail(
            f"{guide.name} did not finish within {GUIDE_TIMEOUT_SECONDS} s "
            f"in quick mode. Last output:\n{output[-3000:]}"
        )


def test_guides_found():
    names = [guide.name for guide in GUIDES]
    for name in EXPECTED_OUTPUTS:
        assert name in names, f"guide {name} is missing from {GUIDES_DIR}"


@pytest.mark.parametrize("guide", GUIDES, ids=[guide.name for guide in GUIDES])
def test_guide_runs_in_quick_mode(guide, tmp_path):
    working_dir = tmp_path / "work"
    output_dir = tmp_path / "outputs"
    working_dir.mkdir()

    result = run_guide(guide, working_dir, output_dir)
    output_tail = result.stdout[-3000:]
    assert result.returncode == 0, (
        f"{guide.name} exited with code {result.returncode} on backend "
        f"{keras.config.backend()}. Last output:\n{output_tail}"
    )

    announced = [
        (working_dir / path.strip()).resolve()
        for path in OUTPUT_LINE.findall(result.stdout)
    ]
    assert announced, (
        f"{guide.name} printed no 'Wrote <path>' line. Every guide must "
        f"announce the files it writes. Last output:\n{output_tail}"
    )
    for path in announced:
        assert path.is_file(), f"{guide.name} announced {path}, not found"
        assert path.stat().st_size > 0, f"{guide.name} wrote empty {path}"
        assert path.is_relative_to(output_dir.resolve()), (
            f"{guide.name} wrote {path} outside KERAS_NEXUS_OUTPUT_DIR "
            f"({output_dir})"
        )
        header = path.read_bytes()[:8]
        if path.suffix == ".png":
            assert header == PNG_SIGNATURE, f"{path} is not a PNG file"
        if path.suffix == ".keras":
            assert header[:4] == ZIP_SIGNATURE, f"{path} is not a .keras zip"

    names = {path.name for path in announced}
    for expected in EXPECTED_OUTPUTS.get(guide.name, []):
        assert expected in names, (
            f"{guide.name} did not write {expected}. It wrote {sorted(names)}"
        )

    stray_files = sorted(path.name for path in working_dir.rglob("*"))
    assert not stray_files, (
        f"{guide.name} wrote {stray_files} into the working directory "
        "instead of KERAS_NEXUS_OUTPUT_DIR"
    )
