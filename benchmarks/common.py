"""Shared plumbing of the benchmark scripts: paths, machine facts, reports.

Every script writes `<output-dir>/<name>.json`, saves its plots next to it
and rewrites its own section of a Markdown report, between the markers
`<!-- BEGIN name -->` and `<!-- END name -->`, leaving the other sections
untouched.
"""

import datetime
import importlib.metadata
import json
import math
import os
import platform
import re
import shlex
import sys

BENCHMARKS_DIR = os.path.dirname(os.path.abspath(__file__))
REPOSITORY_DIR = os.path.dirname(BENCHMARKS_DIR)
DEFAULT_OUTPUT_DIR = os.path.join(BENCHMARKS_DIR, "results")
DEFAULT_REPORT = os.path.join(BENCHMARKS_DIR, "RESULTS.md")
QUICK_ENVIRONMENT_VARIABLE = "KERAS_NEXUS_QUICK"
SECTION_ORDER = ("progressive_scaling", "throughput", "grow_cost")
REPORT_HEADER = """# keras-nexus benchmark results

Miniature measurements of the Nexusformer claims on a small CPU machine.
Each section below is rewritten by the script named in it; the numbers
come from one run of that script on the machine it names. Run a script
with `KERAS_NEXUS_QUICK=1` for a smoke run of about a minute (its numbers
are not meaningful) and `--output-dir DIR` to leave these files alone.
"""


def is_quick():
    """Return whether `KERAS_NEXUS_QUICK` asks for tiny smoke-test settings."""
    return os.environ.get(QUICK_ENVIRONMENT_VARIABLE, "") not in ("", "0")


def prepare_quick_mode():
    """Lower XLA's CPU optimisation level in quick mode.

    Compilation dominates the wall time of the tiny quick-mode models on
    JAX. Must run before JAX is imported; it has no effect on other
    backends and outside quick mode.
    """
    if not is_quick():
        return
    flags = os.environ.get("XLA_FLAGS", "")
    extra = (
        "--xla_backend_optimization_level=0",
        "--xla_llvm_disable_expensive_passes=true",
    )
    for flag in extra:
        if flag.split("=")[0] not in flags:
            flags = f"{flags} {flag}".strip()
    os.environ["XLA_FLAGS"] = flags


def add_output_arguments(parser):
    """Add `--output-dir` and `--report` to an `argparse` parser."""
    parser.add_argument(
        "--output-dir",
        default=None,
        help=(
            "Directory for the JSON result and plots. Defaults to "
            "benchmarks/results."
        ),
    )
    parser.add_argument(
        "--report",
        default=None,
        help=(
            "Markdown report whose section this script rewrites. Defaults "
            "to benchmarks/RESULTS.md with the default output directory, "
            "otherwise to RESULTS.md inside --output-dir."
        ),
    )


def resolve_output_paths(args):
    """Return `(output_dir, report_path)` from the parsed arguments."""
    output_dir = os.path.abspath(args.output_dir or DEFAULT_OUTPUT_DIR)
    if args.report:
        report = os.path.abspath(args.report)
    elif args.output_dir is None:
        report = DEFAULT_REPORT
    else:
        report = os.path.join(output_dir, "RESULTS.md")
    os.makedirs(output_dir, exist_ok=True)
    return output_dir, report


def cpu_model():
    """Return the CPU model name from /proc/cpuinfo, or `platform`'s."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info():
    """Return the CPU model, core counts and OS of this machine."""
    try:
        usable_cores = len(os.sched_getaffinity(0))
    except AttributeError:
        usable_cores = os.cpu_count()
    return {
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def library_versions():
    """Return installed versions of the libraries the results depend on.

    Versions come from package metadata, so no backend is imported here.
    """
    versions = {}
    packages = {
        "keras": "keras",
        "keras-hub": "keras-hub",
        "jax": "jax",
        "jaxlib": "jaxlib",
        "torch": "torch",
        "tensorflow": "tensorflow",
        "numpy": "numpy",
    }
    for label, package in packages.items():
        try:
            versions[label] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[label] = None
    if versions["tensorflow"] is None:
        try:
            versions["tensorflow"] = importlib.metadata.version(
                "tensorflow-cpu"
            )
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def command_line():
    """Return the command that started this process, as a shell line.

    The Keras backend and the quick-mode variable are included, because
    they change what the script measures.
    """
    script = os.path.relpath(os.path.abspath(sys.argv[0]), REPOSITORY_DIR)
    parts = ["python", script] + sys.argv[1:]
    environment = []
    backend = os.environ.get("KERAS_BACKEND")
    if backend:
        environment.append(f"KERAS_BACKEND={backend}")
    if is_quick():
        value = os.environ[QUICK_ENVIRONMENT_VARIABLE]
        environment.append(f"{QUICK_ENVIRONMENT_VARIABLE}={value}")
    return " ".join(environment + [shlex.quote(part) for part in parts])


def utc_now():
    """Return the current UTC time as an ISO 8601 string, to the second."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.replace(microsecond=0).isoformat()


def environment_record(backend):
    """Return the machine, versions, command and date for a JSON result."""
    return {
        "machine": machine_info(),
        "backend": backend,
        "versions": library_versions(),
        "command": command_line(),
        "date": utc_now(),
        "quick": is_quick(),
        # Other processes on a shared machine slow every timing down.
        "load_average": list(os.getloadavg()),
    }


def environment_markdown(record):
    """Format `environment_record(...)` as a Markdown bullet list."""
    machine = record["machine"]
    versions = ", ".join(
        f"{name} {version}"
        for name, version in record["versions"].items()
        if version is not None
    )
    lines = [
        f"- Machine: {machine['cpu_model']}, {machine['usable_cores']} "
        f"usable cores ({machine['logical_cores']} logical), "
        f"{machine['platform']}, Python {machine['python']}",
        f"- Backend: {record['backend']}",
        f"- Versions: {versions}",
        f"- Command: `{record['command']}`",
        f"- Date (UTC): {record['date']}",
    ]
    if "load_average" in record:
        one, five, fifteen = record["load_average"]
        lines.append(
            f"- Load average when the results were written (1, 5, 15 min): "
            f"{one:.1f}, {five:.1f}, {fifteen:.1f}"
        )
    if record["quick"]:
        lines.append(
            "- Quick mode: tiny smoke-test settings; the numbers are not "
            "meaningful."
        )
    return "\n".join(lines)


def _sanitize(value):
    """Replace non-finite floats by None so the JSON stays standard."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _sanitize(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_sanitize(item) for item in value]
    return value


def write_json(path, data):
    """Write `data` as indented, standard JSON (NaN and inf become null)."""
    with open(path, "w", encoding="utf-8") as file:
        json.dump(_sanitize(data), file, indent=2, allow_nan=False)
        file.write("\n")


def _markers(name):
    return f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"


def update_report_section(report_path, name, markdown):
    """Replace the section `name` of the Markdown report with `markdown`.

    A missing report is created with a header and one empty slot per known
    section, so the sections keep a fixed order whichever script runs
    first.
    """
    if os.path.exists(report_path):
        with open(report_path, encoding="utf-8") as file:
            text = file.read()
    else:
        slots = []
        for section in SECTION_ORDER:
            begin, end = _markers(section)
            slots.append(f"{begin}\n{end}")
        text = REPORT_HEADER + "\n" + "\n\n".join(slots) + "\n"

    begin, end = _markers(name)
    block = f"{begin}\n{markdown.strip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"

    os.makedirs(os.path.dirname(report_path), exist_ok=True)
    with open(report_path, "w", encoding="utf-8") as file:
        file.write(text)


def relative_link(target_path, report_path):
    """Return the path of `target_path` relative to the report's folder."""
    return os.path.relpath(target_path, os.path.dirname(report_path))


def markdown_table(headers, rows):
    """Format a Markdown table from a header list and rows of cells."""
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return "\n".join(lines)


def format_flops(value):
    """Format a FLOP count with an SI prefix, e.g. `3.21e12` -> `3.21 T`."""
    if value is None:
        return "n/a"
    for threshold, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M")):
        if abs(value) >= threshold:
            return f"{value / threshold:.3g} {prefix}"
    return f"{value:.3g}"
