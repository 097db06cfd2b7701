"""The `keras-nexus` command line: train, generate and grow."""

import argparse
import logging
import os
import sys
import tempfile

from keras_nexus.growth_axes import BACKBONE_AXES

BACKENDS = ("jax", "torch", "tensorflow")
SAMPLERS = ("greedy", "top_k", "top_p", "random", "beam", "contrastive")


class CommandError(Exception):
    """Bad input: printed as one line on stderr, exit code 2."""


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer, got {text!r}"
        ) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer, got {text!r}"
        )
    return value


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-nexus",
        description=(
            "Train Nexusformer language models progressively (train, grow "
            "exactly, keep training), generate text, and grow saved models."
        ),
    )
    parser.add_argument(
        "--backend",
        help=(
            "Keras backend: jax, torch or tensorflow. Defaults to "
            "KERAS_BACKEND, else Keras's default."
        ),
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="Log library messages at INFO level to stderr.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser(
        "train",
        help="Train a model in stages, growing it between stages.",
        description=(
            "Train a byte-level Nexusformer on text files in stages. Every "
            "stage after the first grows the model exactly (outputs are "
            "verified equal) and keeps training. Writes metrics.json, "
            "loss.png, per-stage checkpoints and model.keras to --output."
        ),
    )
    train.add_argument(
        "--text",
        action="append",
        metavar="PATH",
        help=(
            "UTF-8 text file or directory of .txt files; repeat for several. "
            "Defaults to the bundled Shakespeare corpus (1.1 MB)."
        ),
    )
    train.add_argument(
        "--output", required=True, metavar="DIR", help="Output directory."
    )
    stages = train.add_mutually_exclusive_group()
    stages.add_argument(
        "--stages",
        type=_positive_int,
        metavar="N",
        help=(
            "Number of stages of the default schedule, which grows the "
            "attention and feed-forward widths by 1.5x and adds one block "
            "per stage (default: 2)."
        ),
    )
    stages.add_argument(
        "--schedule",
        metavar="FILE",
        help="JSON schedule file (model, stages with 'steps' and 'grow').",
    )
    train.add_argument(
        "--steps-per-stage",
        type=_positive_int,
        metavar="N",
        help="Optimizer steps per stage (default schedule: 200).",
    )
    train.add_argument(
        "--sequence-length",
        type=_positive_int,
        metavar="N",
        help="Tokens (UTF-8 bytes) per training example (default: 128).",
    )
    train.add_argument(
        "--batch-size",
        type=_positive_int,
        metavar="N",
        help="Examples per optimizer step (default: 16).",
    )
    train.add_argument(
        "--fresh-optimizer",
        action="store_true",
        help=(
            "Start a fresh AdamW state at every growth instead of carrying "
            "the moments of old weights over."
        ),
    )
    train.add_argument(
        "--resume",
        action="store_true",
        help=(
            "Continue the run in --output after its last completed stage, "
            "with the schedule stored there."
        ),
    )
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="Replace --output if it already contains files.",
    )

    generate = commands.add_parser(
        "generate",
        help="Continue a prompt with a trained model.",
        description="Print the prompt followed by the model's continuation.",
    )
    generate.add_argument(
        "--model",
        required=True,
        metavar="DIR",
        help="Output directory of `train` or `grow`, or a .keras file.",
    )
    generate.add_argument("--prompt", required=True, help="Text to continue.")
    generate.add_argument(
        "--max-length",
        type=_positive_int,
        default=200,
        metavar="N",
        help="Total length in tokens (bytes), prompt included (default 200).",
    )
    generate.add_argument(
        "--sampler",
        default="top_k",
        choices=SAMPLERS,
        help=(
            "keras_hub sampler (default: top_k, which samples, so output "
            "varies between runs unless --seed is given)."
        ),
    )
    generate.add_argument(
        "--seed", type=int, default=None, help="Random seed for sampling."
    )

    grow = commands.add_parser(
        "grow",
        help="Grow a saved model and save the result.",
        description=(
            "Grow a saved Nexusformer exactly and report the verified max "
            "absolute difference of the outputs."
        ),
    )
    grow.add_argument(
        "--model", required=True, metavar="DIR", help="Model to grow."
    )
    grow.add_argument(
        "--output", required=True, metavar="DIR", help="Output directory."
    )
    grow.add_argument(
        "--overwrite",
        action="store_true",
        help="Replace --output if it already contains files.",
    )
    grow.add_argument(
        "--new-layer-positions",
        default="interleave",
        choices=("interleave", "top", "bottom"),
        help="Where new blocks go (default: interleave).",
    )
    for axis in BACKBONE_AXES:
        grow.add_argument(
            "--" + axis.replace("_", "-"),
            type=_positive_int,
            metavar="N",
            help=f"New {axis}.",
        )
    for subparser in (train, generate, grow):
        subparser.add_argument(
            "--backend",
            default=argparse.SUPPRESS,
            help="Keras backend: jax, torch or tensorflow (as above).",
        )
    return parser


def _select_backend(backend):
    """Set KERAS_BACKEND before Keras is imported."""
    if backend is None:
        return
    if backend not in BACKENDS:
        raise CommandError(
            f"Unknown backend {backend!r}. Choose one of: {', '.join(BACKENDS)}."
        )
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != backend:
            raise CommandError(
                f"Keras is already imported with the "
                f"{keras.backend.backend()!r} backend; run the command in a "
                f"new process with KERAS_BACKEND={backend}."
            )
    os.environ["KERAS_BACKEND"] = backend


def _import_quietly():
    """Import Keras and the library with C-level stderr captured.

    keras_hub imports TensorFlow on every backend, and TensorFlow's C++
    start-up writes log lines (CUDA probing, oneDNN notices) straight to
    file descriptor 2, before TF_CPP_MIN_LOG_LEVEL is consulted. They are
    replayed only if the import fails, so that errors keep one clean line.
    """
    if "keras_nexus.models" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import keras  # noqa: F401

            import keras_nexus.growth  # noqa: F401
            import keras_nexus.models  # noqa: F401
            import keras_nexus.training  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _train(args):
    from keras_nexus.training import ProgressiveTrainer
    from keras_nexus.training import default_schedule
    from keras_nexus.training import load_schedule

    if args.resume:
        ignored = [
            option
            for option, value in (
                ("--stages", args.stages),
                ("--schedule", args.schedule),
                ("--steps-per-stage", args.steps_per_stage),
                ("--sequence-length", args.sequence_length),
                ("--batch-size", args.batch_size),
            )
            if value is not None
        ]
        if ignored:
            raise CommandError(
                f"--resume continues with the schedule stored in "
                f"{args.output}; drop {', '.join(ignored)}."
            )
    options = {}
    if args.sequence_length:
        options["sequence_length"] = args.sequence_length
    if args.batch_size:
        options["batch_size"] = args.batch_size
    if args.schedule:
        schedule = load_schedule(args.schedule)
        overrides = dict(options)
        if args.steps_per_stage:
            stages = [
                type(stage)(steps=args.steps_per_stage, grow=stage.grow)
                for stage in schedule.stages
            ]
            overrides["stages"] = stages
        if overrides:
            schedule = type(schedule).from_dict(
                {**schedule.to_dict(), **_as_dicts(overrides)},
                source=args.schedule,
            )
    else:
        schedule = default_schedule(
            num_stages=args.stages or 2,
            steps_per_stage=args.steps_per_stage or 200,
            **options,
        )
    trainer = ProgressiveTrainer(
        schedule,
        args.output,
        texts=args.text,
        carry_optimizer_state=not args.fresh_optimizer,
    )
    metrics = trainer.run(resume=args.resume, overwrite=args.overwrite)
    last = metrics["stages"][-1]
    print(
        f"Trained {len(metrics['stages'])} stages; final model "
        f"{last['parameters']:,} parameters, validation loss "
        f"{last['val_loss']:.4f}. Outputs in {args.output}"
    )


def _as_dicts(options):
    import dataclasses

    converted = dict(options)
    if "stages" in converted:
        converted["stages"] = [
            dataclasses.asdict(stage) for stage in converted["stages"]
        ]
    return converted


def _load_model(path):
    import keras

    from keras_nexus.training.checkpoints import find_model_file

    return keras.saving.load_model(find_model_file(path), compile=False)


def _generate(args):
    import keras

    from keras_nexus.models import NexusformerCausalLM

    model = _load_model(args.model)
    if not isinstance(model, NexusformerCausalLM) or model.preprocessor is None:
        raise CommandError(
            f"{args.model} does not hold a NexusformerCausalLM with a "
            "preprocessor; train one with `keras-nexus train`."
        )
    prompt_length = len(args.prompt.encode("utf-8")) + 1  # + start token
    if args.max_length <= prompt_length:
        raise CommandError(
            f"--max-length {args.max_length} leaves no room to generate "
            f"after the prompt of {prompt_length} tokens (bytes plus the "
            f"start token). Pass --max-length above {prompt_length}."
        )
    if args.seed is not None:
        keras.utils.set_random_seed(args.seed)
    model.compile(sampler=args.sampler)
    print(model.generate(args.prompt, max_length=args.max_length))


def _grow(args):
    from keras_nexus.growth import grow_model
    from keras_nexus.training.checkpoints import prepare_output_directory
    from keras_nexus.training.checkpoints import save_final_model

    request = {
        axis: getattr(args, axis)
        for axis in BACKBONE_AXES
        if getattr(args, axis) is not None
    }
    if not request:
        raise CommandError(
            "Nothing to grow: pass at least one of "
            + ", ".join("--" + a.replace("_", "-") for a in BACKBONE_AXES)
            + "."
        )
    # Check the output before the slow load and growth.
    prepare_output_directory(
        args.output, resume=False, overwrite=args.overwrite, can_resume=False
    )
    model = _load_model(args.model)
    try:
        grown = grow_model(
            model, new_layer_positions=args.new_layer_positions, **request
        )
    except ValueError as error:
        raise CommandError(str(error)) from error
    path = save_final_model(args.output, grown)
    print(grown.growth_report.summary())
    print(f"Saved {path}")


def main(argv=None):
    """Run the command line; return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )

    try:
        _select_backend(args.backend)
    except CommandError as error:
        print(f"keras-nexus: error: {error}", file=sys.stderr)
        return 2
    _import_quietly()

    from keras_nexus.data import CorpusError
    from keras_nexus.training import OutputDirectoryError
    from keras_nexus.training import ScheduleError

    try:
        if args.command == "train":
            _train(args)
        elif args.command == "generate":
            _generate(args)
        else:
            _grow(args)
    except (
        CommandError,
        CorpusError,
        OutputDirectoryError,
        ScheduleError,
    ) as error:
        print(f"keras-nexus: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
