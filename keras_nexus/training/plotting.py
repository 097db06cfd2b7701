"""Plot of training and validation loss against training tokens."""

import matplotlib

matplotlib.use("Agg")  # Files only: training runs on machines with no display.

import matplotlib.pyplot as plt  # noqa: E402


def plot_losses(metrics, path):
    """Save a loss-against-tokens plot of a run's metrics to `path`.

    Training loss is drawn per recorded point, validation loss at the end of
    each stage, and a dashed vertical line marks each growth.
    """
    figure, axes = plt.subplots(figsize=(7, 4))
    train_tokens, train_losses = [], []
    for stage in metrics["stages"]:
        train_tokens += stage["train_loss_tokens"]
        train_losses += stage["train_loss"]
    axes.plot(train_tokens, train_losses, label="training loss", color="C0")

    val_tokens = [stage["cumulative_tokens"] for stage in metrics["stages"]]
    val_losses = [stage["val_loss"] for stage in metrics["stages"]]
    axes.plot(val_tokens, val_losses, "o-", label="validation loss", color="C1")

    for stage in metrics["stages"]:
        if "val_loss_after_growth" in stage:
            start = stage["cumulative_tokens"] - stage["tokens"]
            axes.axvline(start, color="grey", linestyle="--", linewidth=1)
            axes.annotate(
                f"grow to {stage['parameters']:,}",
                (start, max(train_losses or val_losses)),
                rotation=90,
                fontsize=7,
                va="top",
                ha="right",
            )
    axes.set_xlabel("training tokens")
    axes.set_ylabel("cross-entropy (nats per byte)")
    axes.set_title("Progressive Nexusformer training")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
