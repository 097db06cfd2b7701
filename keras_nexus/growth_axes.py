"""Names of the axes `grow_model` can grow (importable without Keras)."""

BACKBONE_AXES = (
    "num_layers",
    "hidden_dim",
    "num_query_heads",
    "num_key_value_heads",
    "nexus_hidden_dim",
    "nexus_expanded_dim",
    "ffn_hidden_dim",
    "ffn_expanded_dim",
)
LAYER_AXES = ("hidden_units", "expanded_units")
