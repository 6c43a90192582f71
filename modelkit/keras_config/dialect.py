"""The two Keras config dialects: telling them apart and translating one layer config.

Reading normalises every layer config to the canonical Keras-2 `get_config()` spelling
(`normalise_layer_config`); writing turns it back into either dialect
(`keras2_layer_config`, `keras3_layer_config`). See the package docstring for the rules.
"""

from __future__ import annotations

import copy

from modelkit.errors import KerasConfigError, UnsupportedError

# The version string written into files and JSON we produce: a tf-keras 2.x reader accepts it
# and so does Keras 3's legacy loader. modelkit's own version goes into `modelkit_version`.
KERAS2_VERSION = "2.15.0"
KERAS3_VERSION = "3.5.0"
BACKEND = "tensorflow"

# Keys Keras 3 writes that Keras 2 layers (and modelkit's) do not take: dropped on reading.
KERAS3_ONLY_KEYS = ("quantization_config", "lora_rank", "lora_alpha", "lora_enabled",
                    "build_config", "compile_config", "use_cudnn")
KERAS3_ONLY_KEYS_BY_OP = {
    "LSTM": ("seed",), "GRU": ("seed",), "SimpleRNN": ("seed",),
    "LSTMCell": ("seed",), "GRUCell": ("seed",), "SimpleRNNCell": ("seed",),
    "LayerNormalization": ("rms_scaling",),
    "MultiHeadAttention": ("seed", "flash_attention"),
}
# Layers called with several named tensors rather than a list: their signature order. The IR
# keeps the tensors as a list in this order (see reading._named_call).
CALL_TENSOR_ARGS = {"MultiHeadAttention": ("query", "value", "key", "attention_mask")}
# Keys of serialized objects (initializers) only Keras 3 writes; dropped when None.
KERAS3_ONLY_INITIALIZER_KEYS = ("input_axes", "output_axes")
_SERIAL_JUNK = ("module", "registered_name", "shared_object_id", "build_config")
_ACTIVATION_KEYS = ("activation", "recurrent_activation")
_WRAPPER_KEYS = ("layer", "backward_layer", "cell")     # nested layer configs (RNN: its cell)


def is_keras3_config(model_config):
    """Heuristic for configs without a version: Keras 3 markers anywhere in the tree."""
    found = False

    def walk(o, depth=0):
        nonlocal found
        if found or depth > 200:
            return
        if isinstance(o, dict):
            if "batch_shape" in o or o.get("class_name") in ("__keras_tensor__", "DTypePolicy"):
                found = True
                return
            if "args" in o and "kwargs" in o:
                found = True
                return
            for v in o.values():
                walk(v, depth + 1)
        elif isinstance(o, list):
            for v in o:
                walk(v, depth + 1)

    walk(model_config)
    return found


def keras_major_version(keras_version):
    """The major version of a `keras_version` string ("2.15.0" -> 2), None when unreadable."""
    try:
        return int(str(keras_version).split(".")[0])
    except (TypeError, ValueError):
        return None


def _clean_serialized(obj, keras3):
    """Recursively strip Keras-3 serialisation wrappers from nested config values."""
    if isinstance(obj, list):
        return [_clean_serialized(v, keras3) for v in obj]
    if not isinstance(obj, dict):
        return obj
    cls = obj.get("class_name")
    if cls in ("DTypePolicy", "Policy", "FloatDTypePolicy") and isinstance(obj.get("config"), dict):
        return obj["config"].get("name", "float32")
    if cls in ("__lambda__",):
        return copy.deepcopy(obj)        # code stays data, untouched
    if cls == "__tuple__" and isinstance(obj.get("config"), dict) and "value" in obj["config"]:
        return _clean_serialized(list(obj["config"]["value"]), keras3)
    out = {}
    for k, v in obj.items():
        if k in _SERIAL_JUNK and "class_name" in obj:
            continue
        out[k] = _clean_serialized(v, keras3)
    if "class_name" in out and isinstance(out.get("config"), dict):
        for k in KERAS3_ONLY_INITIALIZER_KEYS:     # Keras 3.x GlorotUniform etc.
            if k in out["config"] and out["config"][k] is None:
                del out["config"][k]
    return out


def normalise_layer_config(op, config, keras3=False):
    """Canonical Keras-2 `get_config()` spelling of one layer config (a new dict)."""
    if not isinstance(config, dict):
        raise KerasConfigError(f"layer {op!r}: config must be a dict, got {type(config).__name__}")
    cfg = {}
    drop = set(KERAS3_ONLY_KEYS) | set(KERAS3_ONLY_KEYS_BY_OP.get(op, ()))
    for k, v in config.items():
        if k in drop:
            continue
        if k in _WRAPPER_KEYS and isinstance(v, dict) and "class_name" in v:
            inner_op = v.get("class_name")
            cfg[k] = {"class_name": inner_op,
                      "config": normalise_layer_config(inner_op, v.get("config") or {}, keras3)}
            continue
        cfg[k] = _clean_serialized(v, keras3)
    if isinstance(cfg.get("dtype"), dict):        # a policy the cleaner did not recognise
        cfg["dtype"] = (cfg["dtype"].get("config") or {}).get("name", "float32")
    if cfg.get("time_major") is False:
        del cfg["time_major"]
    if cfg.get("zero_output_for_mask") is False:
        del cfg["zero_output_for_mask"]
    if op == "LeakyReLU" and "negative_slope" in cfg:
        cfg["alpha"] = cfg.pop("negative_slope")
    if op == "LayerNormalization" and isinstance(cfg.get("axis"), int):
        cfg["axis"] = [cfg["axis"]]
    if keras3 and op == "Embedding":
        cfg.setdefault("input_length", None)      # Keras 2 get_config always has it
    if keras3:
        for k in _ACTIVATION_KEYS:
            if cfg.get(k) == "hard_sigmoid":
                cfg[k] = "keras3_hard_sigmoid"
    return cfg


def keras3_activation_names(cfg, where):
    """Spell `activation`/`recurrent_activation` of one layer config (in place) as Keras 3
    reads them: modelkit's `keras3_hard_sigmoid` is Keras 3's `hard_sigmoid`; Keras 2's
    `hard_sigmoid` (clip(0.2x+0.5)) has no Keras 3 spelling and is refused."""
    for k in _ACTIVATION_KEYS:
        if cfg.get(k) == "keras3_hard_sigmoid":
            cfg[k] = "hard_sigmoid"
        elif cfg.get(k) == "hard_sigmoid":
            raise UnsupportedError(
                f"{where}: {k}='hard_sigmoid' (Keras 2: clip(0.2x+0.5)) has no Keras 3 "
                f"equivalent; save with dialect='keras2'", items=[where])


def keras3_layer_config(op, config, where):
    """The inverse for the Keras 3 dialect: modelkit names -> Keras 3 names."""
    cfg = {}
    for k, v in config.items():
        if k in _WRAPPER_KEYS and isinstance(v, dict) and "class_name" in v:
            inner_op = v["class_name"]
            cfg[k] = {"module": "keras.layers", "class_name": inner_op,
                      "config": keras3_layer_config(inner_op, v.get("config") or {}, where),
                      "registered_name": None}
            continue
        cfg[k] = copy.deepcopy(v)
    keras3_activation_names(cfg, where)
    if op == "LeakyReLU" and "alpha" in cfg:
        cfg["negative_slope"] = cfg.pop("alpha")
    if op == "LayerNormalization" and isinstance(cfg.get("axis"), list) and len(cfg["axis"]) == 1:
        cfg["axis"] = cfg["axis"][0]
    if op == "Embedding":
        cfg.pop("input_length", None)
    if op == "MultiHeadAttention":      # tf-keras's build shapes: Keras 3 refuses them
        for k in ("query_shape", "key_shape", "value_shape", "softmax_robust_masking"):
            cfg.pop(k, None)
    cfg.pop("time_major", None)
    cfg.pop("batch_input_shape", None)    # Keras 3 refuses it; its InputLayer has the shape
    for k, v in list(cfg.items()):
        if isinstance(v, dict) and "class_name" in v and "config" in v and k not in _WRAPPER_KEYS:
            if k.endswith("initializer") or k.endswith("regularizer") or k.endswith("constraint"):
                kind = ("initializers" if k.endswith("initializer") else
                        "regularizers" if k.endswith("regularizer") else "constraints")
                cfg[k] = {"module": f"keras.{kind}", **v, "registered_name": None}
    return cfg


# where Keras 3 finds a wrapped whole model's class
_KERAS3_MODULES = {"Sequential": "keras", "Functional": "keras.src.models.functional",
                   "Model": "keras.src.models.functional"}


def keras2_layer_config(op, config):
    """A canonical layer config in the Keras 2 dialect (a new dict)."""
    cfg = copy.deepcopy(config)
    if cfg.get("time_major") is False:
        del cfg["time_major"]         # Keras 3 refuses it; tf-keras defaults it to False
    inner = [cfg.get(k) for k in _WRAPPER_KEYS]
    if op == "StackedRNNCells" and isinstance(cfg.get("cells"), list):
        inner += cfg["cells"]
    for v in inner:
        if isinstance(v, dict) and isinstance(v.get("config"), dict):
            v["config"] = keras2_layer_config(v.get("class_name"), v["config"])
            # tf-keras writes (and ignores) these; Keras 3 needs them to find a wrapped
            # built-in layer class, so a wrapper written here loads in both
            v.setdefault("module", _KERAS3_MODULES.get(v.get("class_name"), "keras.layers"))
            v.setdefault("registered_name", None)
    return cfg
