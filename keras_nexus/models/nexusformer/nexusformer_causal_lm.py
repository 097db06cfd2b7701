"""The Nexusformer causal language model with cached generation."""

import keras
from keras import ops
from keras_hub.models import CausalLM
from keras_hub.src.utils.tensor_utils import any_equal

from keras_nexus.models.nexusformer.nexusformer_backbone import (
    NexusformerBackbone,
)
from keras_nexus.models.nexusformer.nexusformer_causal_lm_preprocessor import (
    NexusformerCausalLMPreprocessor,
)


@keras.saving.register_keras_serializable(package="keras_nexus")
class NexusformerCausalLM(CausalLM):
    """Nexusformer with a language-model head, for `fit()` and `generate()`.

    The head maps the backbone output to vocabulary logits, through the
    untied `reverse_embeddings` of `token_embedding` unless the backbone
    ties them. `generate()` decodes incrementally with a key/value cache and
    any `keras_hub.samplers` sampler chosen in `compile(sampler=...)`.

    Args:
        backbone: A `NexusformerBackbone`.
        preprocessor: A `NexusformerCausalLMPreprocessor`, or `None`. With
            `None` the model takes and returns token-id dicts
            (`"token_ids"`, `"padding_mask"`).

    Examples:

    ```python
    import keras
    import keras_nexus

    backbone = keras_nexus.models.NexusformerBackbone(
        vocabulary_size=256,
        num_layers=2,
        num_query_heads=4,
        num_key_value_heads=2,
        hidden_dim=64,
    )
    preprocessor = keras_nexus.models.NexusformerCausalLMPreprocessor(
        keras_nexus.models.NexusformerTokenizer(), sequence_length=64
    )
    causal_lm = keras_nexus.models.NexusformerCausalLM(backbone, preprocessor)
    causal_lm.compile(optimizer=keras.optimizers.AdamW(1e-3), sampler="greedy")
    causal_lm.fit(["To be, or not to be"] * 8, batch_size=4, epochs=1)
    causal_lm.generate("To be", max_length=20)
    ```
    """

    backbone_cls = NexusformerBackbone
    preprocessor_cls = NexusformerCausalLMPreprocessor

    def __init__(self, backbone, preprocessor=None, **kwargs):
        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor

        # === Functional model ===
        inputs = backbone.input
        hidden_states = backbone(inputs)
        outputs = backbone.token_embedding(hidden_states, reverse=True)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

    def call_with_cache(self, token_ids, cache, cache_update_index):
        """Run a forward pass that reads and updates the key/value cache.

        Args:
            token_ids: int tensor `(batch, length)` of new tokens.
            cache: float tensor `(batch, num_layers, 2, max_length,
                num_key_value_heads, head_dim)`.
            cache_update_index: position of `token_ids[:, 0]` in the
                sequence.

        Returns:
            `(logits, hidden_states, cache)` for the new tokens.
        """
        x = self.backbone.token_embedding(token_ids)
        updated_cache = []
        for i, transformer_layer in enumerate(self.backbone.transformer_layers):
            x, layer_cache = transformer_layer(
                x,
                cache=cache[:, i, ...],
                cache_update_index=cache_update_index,
            )
            updated_cache.append(layer_cache)
        cache = ops.stack(updated_cache, axis=1)
        hidden_states = self.backbone.layer_norm(x)
        logits = self.backbone.token_embedding(hidden_states, reverse=True)
        return logits, hidden_states, cache

    def _build_cache(self, token_ids):
        """Fill a new cache from the whole padded prompt."""
        batch_size = ops.shape(token_ids)[0]
        max_length = ops.shape(token_ids)[1]
        shape = [
            batch_size,
            self.backbone.num_layers,
            2,
            max_length,
            self.backbone.num_key_value_heads,
            self.backbone.head_dim,
        ]
        cache = ops.zeros(shape, dtype=self.compute_dtype)
        _, hidden_states, cache = self.call_with_cache(token_ids, cache, 0)
        return hidden_states, cache

    def generate_step(self, inputs, stop_token_ids=None):
        """Generate token ids for one batch of padded prompts.

        Compilable: `generate()` wraps it in `jit` on every backend that
        supports it. Positions after the shortest prompt are filled one at
        a time; positions inside a longer prompt keep the prompt's token.
        """
        token_ids = inputs["token_ids"]
        padding_mask = inputs["padding_mask"]
        hidden_states, cache = self._build_cache(token_ids)
        row_lengths = ops.sum(ops.cast(padding_mask, "int32"), axis=-1)
        index = ops.min(row_lengths)

        def next(prompt, cache, index):
            cache_update_index = index - 1
            batch_size = ops.shape(prompt)[0]
            prompt = ops.slice(prompt, [0, cache_update_index], [batch_size, 1])
            logits, hidden_states, cache = self.call_with_cache(
                prompt, cache, cache_update_index
            )
            return (
                ops.squeeze(logits, axis=1),
                ops.squeeze(hidden_states, axis=1),
                cache,
            )

        token_ids = self.sampler(
            next=next,
            prompt=token_ids,
            cache=cache,
            index=index,
            mask=padding_mask,
            stop_token_ids=stop_token_ids,
            hidden_states=hidden_states,
            model=self,
        )

        if stop_token_ids is None:
            padding_mask = ops.ones_like(token_ids, dtype="bool")
        else:
            # Keep each row up to and including its first generated stop
            # token; stop ids inside the prompt do not count.
            is_stop = any_equal(
                token_ids, stop_token_ids, ops.logical_not(padding_mask)
            )
            is_stop = ops.cast(is_stop, "int32")
            stops_before = ops.cumsum(is_stop, axis=-1) - is_stop
            padding_mask = ops.equal(stops_before, 0)
        return {"token_ids": token_ids, "padding_mask": padding_mask}
