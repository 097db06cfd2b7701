"""Wall time and peak memory of `grow_model` next to a `.keras` round trip.

For Nexusformer backbones of increasing size, this script times
`keras_nexus.grow_model` (M and A of every Nexus-Rank layer grown by 1.5x,
with its default verification on a probe batch) and, for the same original
model, `model.save("....keras")` followed by `keras.saving.load_model`.

Peak memory is the peak resident set size (RSS) above the RSS before the
operation, from Linux's `VmHWM` after resetting it through
`/proc/self/clear_refs`. Unlike `tracemalloc`, this includes the buffers
that the backend allocates outside Python (XLA, oneDNN, torch).

In full mode every size runs in its own subprocess, so one size's memory
does not inflate the next one's numbers. Each subprocess first grows, saves
and loads a tiny model once, so that one-time costs (backend start-up,
first compilations of common operations) are not charged to the size. Quick mode (`KERAS_NEXUS_QUICK=1`) runs tiny sizes in one process,
without the warm-up and without growth verification.

Usage:
    KERAS_BACKEND=jax python benchmarks/grow_cost.py
"""

import argparse
import ctypes
import dataclasses
import gc
import json
import logging
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402

logger = logging.getLogger("grow_cost")

NAME = "grow_cost"
GROWTH_FACTOR = 1.5


@dataclasses.dataclass(frozen=True)
class ModelSize:
    """Backbone sizes of one measurement. All layers share M and A."""

    name: str
    hidden_dim: int
    num_layers: int
    num_heads: int
    nexus_hidden_dim: int
    nexus_expanded_dim: int
    vocabulary_size: int = 256


FULL_SIZES = (
    ModelSize("small", 128, 2, 4, 256, 512),
    ModelSize("medium", 256, 4, 4, 512, 1024),
    ModelSize("large", 512, 6, 8, 1024, 2048),
)

QUICK_SIZES = (
    ModelSize("tiny", 16, 1, 2, 16, 32),
    ModelSize("small", 32, 1, 2, 32, 64),
    ModelSize("medium", 32, 2, 2, 48, 96),
)


def _status_kilobytes(field):
    with open("/proc/self/status", encoding="utf-8") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} is missing from /proc/self/status.")


def _reset_peak_rss():
    """Reset Linux's peak-RSS counter, and return False where that fails."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="utf-8") as file:
            file.write("5")
        return True
    except OSError:
        return False


def _release_free_memory():
    """Collect garbage and return freed heap pages to the OS (glibc only).

    Without this, pages freed by an earlier operation stay resident and a
    later operation that reuses them shows no RSS increase at all.
    """
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def measure(operation):
    """Run `operation()` and return its result, seconds and peak memory.

    Returns `(result, record)` where the record contains `seconds` and
    `peak_rss_increase_mb` (None where the peak counter cannot be reset).
    """
    _release_free_memory()
    reset = _reset_peak_rss()
    rss_before = _status_kilobytes("VmRSS")
    start = time.perf_counter()
    result = operation()
    seconds = time.perf_counter() - start
    peak = _status_kilobytes("VmHWM") if reset else None
    record = {
        "seconds": seconds,
        "peak_rss_increase_mb": (
            None if peak is None else (peak - rss_before) / 1024
        ),
    }
    return result, record


def build_backbone(size):
    import keras

    import keras_nexus

    keras.utils.set_random_seed(0)
    return keras_nexus.models.NexusformerBackbone(
        vocabulary_size=size.vocabulary_size,
        num_layers=size.num_layers,
        num_query_heads=size.num_heads,
        num_key_value_heads=size.num_heads,
        hidden_dim=size.hidden_dim,
        nexus_hidden_dim=size.nexus_hidden_dim,
        nexus_expanded_dim=size.nexus_expanded_dim,
        ffn_hidden_dim=size.nexus_hidden_dim,
        ffn_expanded_dim=size.nexus_expanded_dim,
    )


def grow_by_factor(backbone, size, verify=True):
    import keras_nexus

    new_hidden = int(GROWTH_FACTOR * size.nexus_hidden_dim)
    new_expanded = int(GROWTH_FACTOR * size.nexus_expanded_dim)
    return keras_nexus.grow_model(
        backbone,
        nexus_hidden_dim=new_hidden,
        nexus_expanded_dim=new_expanded,
        ffn_hidden_dim=new_hidden,
        ffn_expanded_dim=new_expanded,
        atol=1e-4,
        verify=verify,
        seed=0,
    )


def save_and_load(backbone):
    """Return `(save record, load record)` of a `.keras` round trip."""
    import keras

    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "model.keras")
        _, save_record = measure(lambda: backbone.save(path))
        save_record["file_mb"] = os.path.getsize(path) / 2**20
        _, load_record = measure(lambda: keras.saving.load_model(path))
    return save_record, load_record


def warm_up():
    """Grow, save and load a tiny model once to pay one-time costs."""
    size = ModelSize("warm_up", 8, 1, 2, 8, 16)
    backbone = build_backbone(size)
    grow_by_factor(backbone, size)
    save_and_load(backbone)


def measure_size(size):
    """Measure growth and a save/load round trip for one model size."""
    import keras

    keras.config.set_dtype_policy("float32")
    backbone, build = measure(lambda: build_backbone(size))
    parameters = backbone.count_params()
    logger.info(
        "%s: %d parameters, built in %.1f s", size.name, parameters,
        build["seconds"],
    )

    # Quick mode skips the verification: its eager probe passes cost more
    # than the rest of the smoke run.
    verify = not common.is_quick()
    grown, grow_record = measure(
        lambda: grow_by_factor(backbone, size, verify=verify)
    )
    grow_record["parameters_after"] = grown.count_params()
    grow_record["verified"] = verify
    grow_record["max_abs_diff"] = (
        float(grown.growth_report.max_abs_diff) if verify else None
    )
    logger.info("%s: grown in %.1f s", size.name, grow_record["seconds"])
    del grown

    save_record, load_record = save_and_load(backbone)
    logger.info(
        "%s: saved in %.1f s, loaded in %.1f s",
        size.name,
        save_record["seconds"],
        load_record["seconds"],
    )
    return {
        "size": dataclasses.asdict(size),
        "parameters": parameters,
        "build": build,
        "grow": grow_record,
        "save": save_record,
        "load": load_record,
        "save_plus_load_seconds": save_record["seconds"]
        + load_record["seconds"],
    }


def run_size_subprocess(size_name, scratch):
    raw_path = os.path.join(scratch, f"{size_name}.json")
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--size",
        size_name,
        "--raw-output",
        raw_path,
    ]
    completed = subprocess.run(command, check=False)
    if completed.returncode != 0:
        raise RuntimeError(
            f"The {size_name} measurement failed with exit code "
            f"{completed.returncode}; rerun `{' '.join(command)}` to see why."
        )
    with open(raw_path, encoding="utf-8") as file:
        return json.load(file)


def _format_memory(value):
    return "n/a" if value is None else f"{value:.0f}"


def plot_costs(result, path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    records = result["sizes"]
    parameters = [record["parameters"] for record in records]
    figure, axes = pyplot.subplots(1, 2, figsize=(10, 4))
    axes[0].plot(
        parameters,
        [record["grow"]["seconds"] for record in records],
        marker="o",
        label="grow_model",
    )
    axes[0].plot(
        parameters,
        [record["save_plus_load_seconds"] for record in records],
        marker="s",
        label=".keras save + load",
    )
    axes[0].set_xscale("log")
    axes[0].set_xlabel("parameters before growth")
    axes[0].set_ylabel("seconds")
    axes[0].legend()
    axes[0].grid(alpha=0.3)
    for key, label, marker in (
        ("grow", "grow_model", "o"),
        ("save", "save", "s"),
        ("load", "load", "^"),
    ):
        values = [record[key]["peak_rss_increase_mb"] for record in records]
        if any(value is None for value in values):
            continue
        axes[1].plot(parameters, values, marker=marker, label=label)
    axes[1].set_xscale("log")
    axes[1].set_xlabel("parameters before growth")
    axes[1].set_ylabel("peak RSS increase (MB)")
    axes[1].legend()
    axes[1].grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)


def report_markdown(result, plot_path, report_path):
    lines = [
        "## Cost of growth next to a save and load",
        "",
        common.environment_markdown(result["environment"]),
        "",
        f"Each Nexusformer backbone is grown with `keras_nexus.grow_model` "
        f"to {GROWTH_FACTOR}x its Nexus-Rank widths M and A (attention and "
        f"feed-forward), with the default verification on a probe batch "
        f"included in the time. The same original model is then saved with "
        f"`model.save(\"model.keras\")` and read back with "
        f"`keras.saving.load_model`. Peak memory is the peak resident set "
        f"size above the size before the operation (`VmHWM` after a reset "
        f"through `/proc/self/clear_refs`). "
        + (
            "Each size ran in its own process, after growing, saving and "
            "loading a tiny model once so that one-time start-up costs are "
            "excluded."
            if result["isolated_processes"]
            else "Quick mode: all sizes in one process, no warm-up, growth "
            "not verified."
        ),
        "",
    ]
    rows = []
    for record in result["sizes"]:
        size = record["size"]
        rows.append(
            [
                size["name"],
                f"D={size['hidden_dim']}, L={size['num_layers']}, "
                f"M={size['nexus_hidden_dim']}, "
                f"A={size['nexus_expanded_dim']}",
                f"{record['parameters']:,} -> "
                f"{record['grow']['parameters_after']:,}",
                f"{record['grow']['seconds']:.2f}",
                _format_memory(record["grow"]["peak_rss_increase_mb"]),
                "not measured"
                if record["grow"]["max_abs_diff"] is None
                else f"{record['grow']['max_abs_diff']:.1e}",
                f"{record['save']['seconds']:.2f} + "
                f"{record['load']['seconds']:.2f}",
                f"{_format_memory(record['save']['peak_rss_increase_mb'])} / "
                f"{_format_memory(record['load']['peak_rss_increase_mb'])}",
                f"{record['save']['file_mb']:.0f}",
            ]
        )
    lines.append(
        common.markdown_table(
            [
                "size",
                "shape",
                "parameters",
                "grow s",
                "grow peak RSS MB",
                "grow max abs diff",
                "save + load s",
                "save / load peak RSS MB",
                "file MB",
            ],
            rows,
        )
    )
    lines.append("")
    link = common.relative_link(plot_path, report_path)
    lines.append(f"![grow_model cost against a save and load]({link})")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--size",
        default=None,
        help="Measure only this size (used by the subprocess driver).",
    )
    parser.add_argument(
        "--raw-output",
        default=None,
        help="With --size: write that size's record to this JSON file.",
    )
    common.add_output_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    common.prepare_quick_mode()
    quick = common.is_quick()
    sizes = QUICK_SIZES if quick else FULL_SIZES
    by_name = {size.name: size for size in sizes}

    if args.size is not None:
        if args.size not in by_name:
            raise ValueError(
                f"Unknown --size {args.size!r}; choose one of "
                f"{sorted(by_name)}."
            )
        warm_up()
        record = measure_size(by_name[args.size])
        if args.raw_output:
            common.write_json(args.raw_output, record)
        return record

    import keras

    backend = keras.backend.backend()
    if quick:
        records = [measure_size(size) for size in sizes]
    else:
        with tempfile.TemporaryDirectory() as scratch:
            records = [run_size_subprocess(size.name, scratch) for size in sizes]

    output_dir, report_path = common.resolve_output_paths(args)
    result = {
        "environment": common.environment_record(backend),
        "growth_factor": GROWTH_FACTOR,
        "isolated_processes": not quick,
        "sizes": records,
    }
    json_path = os.path.join(output_dir, f"{NAME}.json")
    plot_path = os.path.join(output_dir, f"{NAME}.png")
    common.write_json(json_path, result)
    plot_costs(result, plot_path)
    common.update_report_section(
        report_path, NAME, report_markdown(result, plot_path, report_path)
    )
    logger.info("Wrote %s, %s and %s", json_path, plot_path, report_path)
    return result


if __name__ == "__main__":
    main()
