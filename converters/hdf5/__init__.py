"""IR <-> Keras files: legacy HDF5 (`.h5`), weights files, `.keras` archives, JSON configs.

Public API::

    graph_to_keras_config(graph, dialect="keras2") -> dict
    keras_config_to_graph(model_config, weights=None, keras_version=None) -> Graph
    save_graph(graph, path, dialect="keras2", include_optimizer=True)
    load_graph(path) -> Graph
    save_weights(graph, path)
    load_weights_into(graph, path, by_name=False, skip_mismatch=False) -> Graph
    load_keras_archive(path) -> Graph
    save_keras_archive(graph, path)

Everything that goes wrong while reading raises `modelkit.errors.ModelLoadError` naming the
path and the piece. Nothing read from a file is ever unpickled, unmarshalled or evaluated.
Config dialects and weight naming live in `modelkit.keras_config`; `h5io` holds the file layout.
"""

from .archive import load_keras_archive, save_keras_archive
from .h5io import load_graph, load_weights_into, save_graph, save_weights
from modelkit.keras_config import (KERAS3_ONLY_KEYS, KERAS3_ONLY_KEYS_BY_OP, graph_to_keras_config,
                                   keras_config_to_graph, normalise_layer_config)

__all__ = ["graph_to_keras_config", "keras_config_to_graph", "save_graph", "load_graph",
           "save_weights", "load_weights_into", "load_keras_archive", "save_keras_archive",
           "normalise_layer_config", "KERAS3_ONLY_KEYS", "KERAS3_ONLY_KEYS_BY_OP"]
