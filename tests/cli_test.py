"""End-to-end tests of the `keras-nexus` command line, in process."""

import json
import os

import keras
import pytest

from keras_nexus.cli import main
from tests.training_test import tiny_schedule
from tests.training_test import write_text


@pytest.fixture()
def schedule_file(tmp_path):
    path = tmp_path / "schedule.json"
    path.write_text(json.dumps(tiny_schedule().to_dict()))
    return str(path)


def run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_train_generate_grow_end_to_end(tmp_path, schedule_file, capsys):
    text = write_text(str(tmp_path))
    output = str(tmp_path / "run")

    code, out, _ = run(
        ["train", "--text", text, "--output", output, "--schedule",
         schedule_file],
        capsys,
    )

    assert code == 0
    assert "Trained 2 stages" in out
    metrics = json.loads(open(os.path.join(output, "metrics.json")).read())
    first, second = metrics["stages"]
    for key in ("parameters", "train_loss", "val_loss", "tokens", "seconds",
                "growth_max_abs_diff"):
        assert key in first
        assert key in second
    assert second["train_loss"][-1] < first["train_loss"][0]
    assert abs(
        second["val_loss_after_growth"] - second["val_loss_before_growth"]
    ) <= 1e-4
    assert os.path.getsize(os.path.join(output, "loss.png")) > 0
    model = keras.saving.load_model(os.path.join(output, "model.keras"))
    assert model.count_params() == second["parameters"]

    code, out, _ = run(
        ["generate", "--model", output, "--prompt", "It is a truth",
         "--max-length", "24", "--sampler", "greedy"],
        capsys,
    )
    assert code == 0
    assert out.startswith("It is a truth")
    # Greedy bytes of a barely trained model may be spaces; count them too.
    assert len(out.rstrip("\n")) > len("It is a truth")

    grown_dir = str(tmp_path / "grown")
    code, out, _ = run(
        ["grow", "--model", output, "--output", grown_dir, "--num-layers",
         "3", "--hidden-dim", "24"],
        capsys,
    )
    assert code == 0
    assert "max |diff|" in out
    grown = keras.saving.load_model(os.path.join(grown_dir, "model.keras"))
    assert grown.backbone.num_layers == 3
    assert grown.backbone.hidden_dim == 24


def _assert_one_line_error(code, err, fragment):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("keras-nexus: error:")
    assert fragment in lines[0]
    assert "Traceback" not in err


def test_bad_text_inputs(tmp_path, schedule_file, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    short = tmp_path / "short.txt"
    short.write_text("Too short.")
    cases = [
        (str(tmp_path / "missing.txt"), "missing.txt"),
        (str(empty), "empty.txt"),
        (str(binary), "binary.txt"),
        (str(short), "tokens"),
    ]
    for index, (path, fragment) in enumerate(cases):
        code, _, err = run(
            ["train", "--text", path, "--output",
             str(tmp_path / f"out{index}"), "--schedule", schedule_file],
            capsys,
        )
        _assert_one_line_error(code, err, fragment)
        # Nothing is written for bad input, so a corrected rerun works.
        assert not (tmp_path / f"out{index}").exists()


def test_unreadable_text(tmp_path, schedule_file, capsys, monkeypatch):
    text = write_text(str(tmp_path))
    original = open

    def deny(path, *args, **kwargs):
        if str(path) == text:
            raise PermissionError(13, "Permission denied", text)
        return original(path, *args, **kwargs)

    # Tests run as root, where chmod does not block reading.
    monkeypatch.setattr("pathlib.Path.read_bytes", lambda self: deny(self))
    code, _, err = run(
        ["train", "--text", text, "--output", str(tmp_path / "out"),
         "--schedule", schedule_file],
        capsys,
    )
    _assert_one_line_error(code, err, "novel.txt")


def test_existing_output_needs_overwrite(tmp_path, schedule_file, capsys):
    output = tmp_path / "run"
    output.mkdir()
    (output / "notes.txt").write_text("keep me")

    code, _, err = run(
        ["train", "--output", str(output), "--schedule", schedule_file],
        capsys,
    )

    _assert_one_line_error(code, err, "--overwrite")
    assert (output / "notes.txt").read_text() == "keep me"


def test_invalid_schedule_and_backend(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"stages": [{"steps": -3}]}))

    code, _, err = run(
        ["train", "--output", str(tmp_path / "a"), "--schedule", str(bad)],
        capsys,
    )
    _assert_one_line_error(code, err, "steps must be an integer")

    code, _, err = run(
        ["--backend", "mxnet", "train", "--output", str(tmp_path / "b")],
        capsys,
    )
    _assert_one_line_error(code, err, "Unknown backend 'mxnet'")


def test_generate_and_grow_bad_input(tmp_path, capsys):
    code, _, err = run(
        ["generate", "--model", str(tmp_path / "nowhere"), "--prompt", "x"],
        capsys,
    )
    _assert_one_line_error(code, err, "not found")

    code, _, err = run(
        ["grow", "--model", str(tmp_path), "--output", str(tmp_path / "g")],
        capsys,
    )
    _assert_one_line_error(code, err, "Nothing to grow")


def test_help_describes_options(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    out = capsys.readouterr().out

    assert info.value.code == 0
    assert "--steps-per-stage" in out
    assert "bytes" in out
    assert "--resume" in out


def test_resume_rejects_schedule_options(tmp_path, capsys):
    code, _, err = run(
        ["train", "--output", str(tmp_path), "--resume", "--stages", "3"],
        capsys,
    )
    _assert_one_line_error(code, err, "drop --stages")


def test_generate_max_length_below_prompt(tmp_path, schedule_file, capsys):
    text = write_text(str(tmp_path))
    output = str(tmp_path / "run")
    assert main(["train", "--text", text, "--output", output,
                 "--schedule", schedule_file]) == 0
    capsys.readouterr()

    code, _, err = run(
        ["generate", "--model", output, "--prompt", "ROMEO:",
         "--max-length", "3"],
        capsys,
    )
    _assert_one_line_error(code, err, "--max-length 3")


def test_backend_option_after_subcommand(capsys):
    code, _, err = run(["train", "--backend", "mxnet", "--output", "x"], capsys)

    _assert_one_line_error(code, err, "Unknown backend 'mxnet'")
