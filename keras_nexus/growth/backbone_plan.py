"""Growth plan of a Nexusformer backbone: new config and per-weight transfers.

Every rule keeps the old function exactly:

- Nexus-Rank hidden width M (and likewise expanded width A): the new columns
  of the kernel that computes the units are zero and the new rows of the
  kernel that reads them are fresh. The new units are exactly zero, which
  changes neither the L2 norm of their stage nor, through gelu(0) = 0, the
  next stage. The norm scale is a fixed number in the config, not
  sqrt(M) or sqrt(A), so it does not move either.
- Depth: a new block starts with fresh weights except the two kernels that
  write to the residual stream (attention output and feed-forward
  `output_kernel`), which are zero, so the block adds zero.
- Residual width D: new embedding columns and new output columns of every
  projection that writes to the residual stream are zero, so the new
  residual features stay zero. Kernels that read the residual stream get
  fresh rows, which multiply those zeros. Appending zeros divides the mean
  square seen by each RMS normalisation by D'/D; multiplying its gains by
  sqrt(D/D') and its epsilon by D/D' undoes that exactly.
- Heads (head_dim fixed): see `place_heads`.
"""

import math

import numpy as np

from keras_nexus.growth.transfer import AxisMap
from keras_nexus.growth.transfer import WeightTransfer


def place_heads(num_query, num_key_value, new_num_query, new_num_key_value):
    """Place old heads among the new ones so that every old query head keeps
    reading the same key/value head.

    Query head `p` of the grown model reads key/value head `p // G'`, where
    `G' = new_num_query // new_num_key_value`. Old query head `i`, in group
    `k = i // G` at slot `s = i % G`, moves to key/value head
    `k * r + s // G'` at slot `s % G'`, where `r = ceil(G / G')` new
    key/value heads serve each old group. Those `r` heads are copies of old
    head `k` (duplicated key and value columns, so they compute the same
    keys and values). Every other key/value head is new.

    Returns:
        `(query_sources, key_value_sources)`: for each new query head the old
        query head it continues or -1, and for each new key/value head the
        old key/value head it copies or -1.

    Raises:
        ValueError: when the new grouping cannot host the old one.
    """
    group = num_query // num_key_value
    new_group = new_num_query // new_num_key_value
    copies = math.ceil(group / new_group)
    if num_key_value * copies > new_num_key_value:
        raise ValueError(
            "Cannot grow attention heads from "
            f"num_query_heads={num_query}, "
            f"num_key_value_heads={num_key_value} to "
            f"num_query_heads={new_num_query}, "
            f"num_key_value_heads={new_num_key_value} exactly: each old "
            f"group of {group} query heads needs {copies} key/value heads "
            f"of {new_group} query heads each, so at least "
            f"{num_key_value * copies} key/value heads. Choose more "
            "key/value heads or keep num_query_heads / num_key_value_heads "
            "at least as large as before."
        )

    query_sources = np.full(new_num_query, -1, np.int64)
    key_value_sources = np.full(new_num_key_value, -1, np.int64)
    for head in range(num_query):
        old_group, slot = divmod(head, group)
        new_key_value = old_group * copies + slot // new_group
        position = new_key_value * new_group + slot % new_group
        query_sources[position] = head
        key_value_sources[new_key_value] = old_group
    return query_sources, key_value_sources


def place_layers(num_layers, new_num_layers, positions):
    """Return, for each new block, the old block it continues or -1."""
    added = new_num_layers - num_layers
    if isinstance(positions, str):
        if positions == "top":
            new_indices = list(range(num_layers, new_num_layers))
        elif positions == "bottom":
            new_indices = list(range(added))
        elif positions == "interleave":
            # New block j goes right after old block ceil((j + 1) * L / k)
            # - 1, which spreads the new blocks evenly through the stack.
            after = [
                math.ceil((j + 1) * num_layers / added) - 1
                for j in range(added)
            ]
            new_indices = [a + j + 1 for j, a in enumerate(after)]
        else:
            raise ValueError(
                "`new_layer_positions` must be 'interleave', 'top', "
                "'bottom' or a list of indices in the grown model. "
                f"Received: new_layer_positions={positions!r}"
            )
    else:
        new_indices = sorted(int(p) for p in positions)
        if (
            len(new_indices) != added
            or len(set(new_indices)) != added
            or any(p < 0 or p >= new_num_layers for p in new_indices)
        ):
            raise ValueError(
                f"`new_layer_positions` must list {added} distinct indices "
                f"in [0, {new_num_layers}) for the new blocks. Received: "
                f"new_layer_positions={list(positions)!r}"
            )

    sources = np.full(new_num_layers, -1, np.int64)
    old_positions = [i for i in range(new_num_layers) if i not in new_indices]
    sources[old_positions] = np.arange(num_layers)
    return sources


def _block_transfers(prefix, old_prefix, maps, rms_scale):
    """Return the transfers of every weight of one existing block."""
    d, m, a = maps["hidden_dim"], maps["nexus_hidden"], maps["nexus_expanded"]
    fm, fa = maps["ffn_hidden"], maps["ffn_expanded"]
    query, key, value = maps["query"], maps["key"], maps["value"]
    output_rows = maps["attention_output_rows"]

    fresh = AxisMap.with_new_fresh
    zero = AxisMap.with_new_zero

    kernels = {
        # (rows, columns) of each kernel.
        "self_attention/query/hidden_kernel": (fresh(d), zero(m)),
        "self_attention/query/expanded_kernel": (fresh(m), zero(a)),
        "self_attention/query/output_kernel": (fresh(a), query),
        "self_attention/key/hidden_kernel": (fresh(d), zero(m)),
        "self_attention/key/expanded_kernel": (fresh(m), zero(a)),
        "self_attention/key/output_kernel": (fresh(a), key),
        "self_attention/value/hidden_kernel": (fresh(d), zero(m)),
        "self_attention/value/expanded_kernel": (fresh(m), zero(a)),
        "self_attention/value/output_kernel": (fresh(a), value),
        "self_attention/attention_output/hidden_kernel": (
            output_rows,
            zero(m),
        ),
        "self_attention/attention_output/expanded_kernel": (fresh(m), zero(a)),
        "self_attention/attention_output/output_kernel": (fresh(a), zero(d)),
        "feedforward/hidden_kernel": (fresh(d), zero(fm)),
        "feedforward/expanded_kernel": (fresh(fm), zero(fa)),
        "feedforward/output_kernel": (fresh(fa), zero(d)),
    }
    transfers = {
        f"{prefix}/{name}": WeightTransfer(f"{old_prefix}/{name}", axes)
        for name, axes in kernels.items()
    }
    for norm in ("self_attention_layernorm", "feedforward_layernorm"):
        transfers[f"{prefix}/{norm}/scale"] = WeightTransfer(
            f"{old_prefix}/{norm}/scale", (fresh(d),), scale=rms_scale
        )
    return transfers


def _new_block_transfers(prefix):
    """Return the transfers of a new block: zero where it writes to the residual."""
    transfers = {}
    for name in (
        "self_attention/attention_output/output_kernel",
        "feedforward/output_kernel",
    ):
        transfers[f"{prefix}/{name}"] = WeightTransfer(None, zero=True)
    return transfers


def plan_backbone_growth(old_config, new_config, new_layer_positions):
    """Return `{new weight path: WeightTransfer}` for a grown backbone.

    Paths are relative to the backbone, e.g.
    `transformer_layer_0/self_attention/query/hidden_kernel`. Weights of new
    blocks that are not listed keep their fresh initial values.
    """
    old, new = old_config, new_config
    head_dim = old["head_dim"]
    rms_scale = math.sqrt(old["hidden_dim"] / new["hidden_dim"])

    query_sources, key_value_sources = place_heads(
        old["num_query_heads"],
        old["num_key_value_heads"],
        new["num_query_heads"],
        new["num_key_value_heads"],
    )
    new_group = new["num_query_heads"] // new["num_key_value_heads"]
    reads_old_values = key_value_sources[
        np.arange(new["num_query_heads"]) // new_group
    ] >= 0
    maps = {
        "hidden_dim": AxisMap.extend(old["hidden_dim"], new["hidden_dim"], 0),
        "nexus_hidden": AxisMap.extend(
            old["nexus_hidden_dim"], new["nexus_hidden_dim"], 0
        ),
        "nexus_expanded": AxisMap.extend(
            old["nexus_expanded_dim"], new["nexus_expanded_dim"], 0
        ),
        "ffn_hidden": AxisMap.extend(
            old["ffn_hidden_dim"], new["ffn_hidden_dim"], 0
        ),
        "ffn_expanded": AxisMap.extend(
            old["ffn_expanded_dim"], new["ffn_expanded_dim"], 0
        ),
        # New query and key heads start fresh: a query head is harmless
        # because either its values are zero or its output rows are.
        "query": AxisMap.from_blocks(
            query_sources, head_dim, np.zeros(len(query_sources), bool)
        ),
        "key": AxisMap.from_blocks(
            key_value_sources, head_dim, np.zeros(len(key_value_sources), bool)
        ),
        # New key/value heads produce zero values, so every query head that
        # reads them outputs zero.
        "value": AxisMap.from_blocks(
            key_value_sources, head_dim, np.ones(len(key_value_sources), bool)
        ),
        # A new query head that reads an old (copied) key/value head gets
        # non-zero values, so its rows of the output projection start at
        # zero. One that reads a new head outputs zero, so its rows are
        # fresh: zero on both sides would never receive a gradient.
        "attention_output_rows": AxisMap.from_blocks(
            query_sources, head_dim, reads_old_values
        ),
    }

    d = maps["hidden_dim"]
    vocabulary = AxisMap.identity(new["vocabulary_size"])
    transfers = {
        "token_embedding/embeddings": WeightTransfer(
            "token_embedding/embeddings",
            (vocabulary, d.with_new_zero()),
        ),
        "sequence_output_layernorm/scale": WeightTransfer(
            "sequence_output_layernorm/scale",
            (d.with_new_fresh(),),
            scale=rms_scale,
        ),
    }
    if not new["tie_word_embeddings"]:
        transfers["token_embedding/reverse_embeddings"] = WeightTransfer(
            "token_embedding/reverse_embeddings",
            (d.with_new_fresh(), vocabulary),
        )

    layer_sources = place_layers(
        old["num_layers"], new["num_layers"], new_layer_positions
    )
    for index, source in enumerate(layer_sources):
        prefix = f"transformer_layer_{index}"
        if source < 0:
            transfers.update(_new_block_transfers(prefix))
        else:
            transfers.update(
                _block_transfers(
                    prefix, f"transformer_layer_{source}", maps, rms_scale
                )
            )
    return transfers
