"""Keras model configs (the JSON in `model_config`, `to_json()`, `config.json`) <-> the IR.

Reading accepts both dialects:

* Keras 2 (tf-keras 2.x): InputLayer `batch_input_shape`, string dtypes, list-form
  `inbound_nodes` `[[["name", node_index, tensor_index, {kwargs}], ...], ...]`.
* Keras 3: InputLayer `batch_shape`, `DTypePolicy` dicts, `module`/`registered_name`/
  `build_config`, dict-form nodes `{"args": [...__keras_tensor__...], "kwargs": {...}}`,
  explicit `NotEqual` mask nodes (and `LogicalOr`/`LogicalAnd` merging masks).

Call arguments: a node's tensors become its IR call inputs; the boolean flags of
`ir.CALL_FLAGS` (`training`, `use_causal_mask`, `return_attention_scores`) its call kwargs.
Layers called with several named tensors (`CALL_TENSOR_ARGS`: MultiHeadAttention's query,
value, key, attention_mask; Keras 2 writes the query first and the rest as kwargs, Keras 3
positional args and kwargs) keep them as one list in signature order, and are written back
the same way in each dialect. MultiHeadAttention's tf-keras `query_shape`/`key_shape`/
`value_shape` stay in the Keras 2 dialect and are dropped for Keras 3, which refuses them.

Every layer config is normalised to the canonical Keras-2 `get_config()` spelling
(`normalise_layer_config`), so the IR never depends on which Keras wrote the file:

* serialized objects (initializers, regularizers, constraints, DTypePolicy) lose `module`,
  `registered_name`, `shared_object_id`; a DTypePolicy becomes its name string;
* `build_config`, `compile_config` are dropped;
* keys only Keras 3 has and modelkit layers would not accept are dropped
  (`KERAS3_ONLY_KEYS`, `KERAS3_ONLY_KEYS_BY_OP`; `zero_output_for_mask` only when False,
  as Keras 2 writes it only when True);
* `time_major: false` is dropped (Keras 3 refuses it; tf-keras defaults it);
* Keras 3 LeakyReLU `negative_slope` becomes `alpha`; Keras 3 LayerNormalization int `axis`
  becomes `[axis]`;
* Keras 3 `hard_sigmoid` (x/6+0.5) becomes modelkit's `keras3_hard_sigmoid`, in
  `activation` and `recurrent_activation`, also inside wrappers; the Keras-3 writer maps back.

Graph mapping: InputLayers are graph inputs (`TensorSpec`), every other layer one node.
A Sequential config becomes a chain with one input (named after its InputLayer, else
`<first layer>_input` as Keras names it; shape from the InputLayer or the first layer's
`batch_input_shape`, which is then removed from that layer's config). A layer whose
class is Functional/Sequential/Model becomes a node with a `subgraph`. Lambda functions
(Keras 2 marshalled bytecode, Keras 3 `__lambda__`) stay as plain data in the node config:
nothing here decodes, unmarshals or evaluates them.
"""

from .dialect import (BACKEND, KERAS2_VERSION, KERAS3_VERSION, KERAS3_ONLY_INITIALIZER_KEYS, KERAS3_ONLY_KEYS, KERAS3_ONLY_KEYS_BY_OP,
                      is_keras3_config, normalise_layer_config)
from .reading import attach_wrapped_models, keras_config_to_graph
from .weights import (attach_layer_weights, keras3_subobject, keras_weight_order,
                      non_trainable_variable,
                      snake_case, strip_weight_suffix, trainable_weights_in_order,
                      variable_names)
from .writing import graph_to_archive_config, graph_to_keras_config

__all__ = ["KERAS2_VERSION", "KERAS3_VERSION", "BACKEND", "keras_config_to_graph", "graph_to_keras_config", "graph_to_archive_config", "normalise_layer_config",
           "KERAS3_ONLY_KEYS", "KERAS3_ONLY_KEYS_BY_OP", "KERAS3_ONLY_INITIALIZER_KEYS",
           "attach_layer_weights", "attach_wrapped_models", "keras_weight_order",
           "is_keras3_config", "non_trainable_variable", "snake_case", "strip_weight_suffix",
           "variable_names", "keras3_subobject", "trainable_weights_in_order"]
