"""Files of a training run, each written so that an interruption keeps the
previous version intact.

Layout of an output directory:

    schedule.json             the schedule the run follows
    metrics.json              per-stage metrics, rewritten after every stage
    checkpoints/stage_K/      model.keras, optimizer.npz, stage.json
    model.keras               the final model, with its preprocessor
    loss.png                  loss against training tokens

A stage directory appears only once complete: it is written under a
temporary name and renamed, and a rename within one file system is atomic.
"""

import json
import os
import re
import shutil
import tempfile

import keras
import numpy as np

STAGE_PATTERN = re.compile(r"^stage_(\d+)$")


class OutputDirectoryError(ValueError):
    """The output directory cannot be used as requested."""


def write_json_atomic(path, data):
    """Write `data` as JSON to `path` through a temporary file and rename."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=directory, suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(data, file, indent=2)
            file.write("\n")
        # mkstemp creates the file readable by its owner only.
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def prepare_output_directory(path, resume, overwrite, can_resume=True):
    """Create `path`, or check that it may be reused.

    Raises:
        OutputDirectoryError: if `path` is a file, or contains files and neither
            `resume` nor `overwrite` is set, or `resume` is set but there is
            no run to resume.
    """
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputDirectoryError(
            f"Output path {path} exists and is not a directory. Choose "
            "another --output."
        )
    has_files = os.path.isdir(path) and bool(os.listdir(path))
    if resume:
        if not os.path.exists(os.path.join(path, "schedule.json")):
            raise OutputDirectoryError(
                f"Cannot resume: {path} contains no training run "
                "(schedule.json is missing). Drop --resume to start a new run."
            )
        return
    if has_files and not overwrite:
        hint = "Pass --overwrite (overwrite=True in Python) to replace it"
        if can_resume:
            hint += ", or --resume (resume=True) to continue its run"
        raise OutputDirectoryError(
            f"Output directory {path} already exists and is not empty. "
            f"{hint}."
        )
    if has_files:
        shutil.rmtree(path)
    os.makedirs(path, exist_ok=True)


def stage_directory(output_dir, index):
    return os.path.join(output_dir, "checkpoints", f"stage_{index}")


def completed_stages(output_dir):
    """Return the indices of complete stage checkpoints, in order."""
    root = os.path.join(output_dir, "checkpoints")
    if not os.path.isdir(root):
        return []
    indices = []
    for name in os.listdir(root):
        match = STAGE_PATTERN.match(name)
        if match and os.path.exists(os.path.join(root, name, "stage.json")):
            indices.append(int(match.group(1)))
    return sorted(indices)


def save_stage(output_dir, index, model, optimizer_values, stage_metrics):
    """Save one stage's model, optimizer state and metrics, atomically."""
    root = os.path.join(output_dir, "checkpoints")
    os.makedirs(root, exist_ok=True)
    temporary = tempfile.mkdtemp(dir=root, prefix=f".stage_{index}.")
    os.chmod(temporary, 0o755)  # mkdtemp makes an owner-only directory.
    try:
        model.save(os.path.join(temporary, "model.keras"))
        np.savez(
            os.path.join(temporary, "optimizer.npz"),
            *[np.asarray(value) for value in optimizer_values],
        )
        write_json_atomic(os.path.join(temporary, "stage.json"), stage_metrics)
        final = stage_directory(output_dir, index)
        if os.path.exists(final):
            shutil.rmtree(final)
        os.replace(temporary, final)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def load_stage(output_dir, index):
    """Return `(model, optimizer_values, stage_metrics)` of a checkpoint."""
    directory = stage_directory(output_dir, index)
    model = keras.saving.load_model(
        os.path.join(directory, "model.keras"), compile=False
    )
    with np.load(os.path.join(directory, "optimizer.npz")) as arrays:
        values = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
    with open(os.path.join(directory, "stage.json"), encoding="utf-8") as file:
        stage_metrics = json.load(file)
    return model, values, stage_metrics


def save_final_model(output_dir, model):
    """Save the final model as `model.keras`, through a temporary file."""
    path = os.path.join(output_dir, "model.keras")
    temporary = os.path.join(output_dir, ".model.tmp.keras")
    model.save(temporary)
    os.replace(temporary, path)
    return path


def find_model_file(path):
    """Return the `.keras` file for a run directory or a `.keras` path."""
    if os.path.isdir(path):
        candidate = os.path.join(path, "model.keras")
        if os.path.exists(candidate):
            return candidate
        stages = completed_stages(path)
        if stages:
            return os.path.join(stage_directory(path, stages[-1]), "model.keras")
        raise OutputDirectoryError(
            f"No model found in {path}: expected {candidate} or a stage "
            "checkpoint. Pass the --output directory of `keras-nexus train`."
        )
    if os.path.isfile(path):
        if not path.endswith(".keras"):
            raise OutputDirectoryError(
                f"{path} is not a .keras file. Pass a training output "
                "directory or a .keras file."
            )
        return path
    raise OutputDirectoryError(
        f"Model path not found: {path}. Pass the --output directory of "
        "`keras-nexus train` or `grow`, or a .keras file."
    )
