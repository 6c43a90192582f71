"""Open Inference Protocol (KServe v2) inference requests and responses, JSON or binary.

The v2 API does not cast: an input's ``datatype`` must be the model's. ``data`` may be
flat (row-major) or nested; its element count must match ``shape``, whose rank must be
the model input's. Outputs come back as JSON ``data`` or, with the binary tensor data
extension, as raw bytes after the JSON header (see `binary`).
"""

from __future__ import annotations

import math


from . import binary
from .datatypes import v2_dtype, v2_name
from .errors import RequestError, brief
from .jsonio import dumps, json_values, load_object
from .tensors import array_from_json, check_against_model, check_shape

UNSUPPORTED_PARAMETERS = ("shared_memory_region", "shared_memory_byte_size",
                          "shared_memory_offset")


class V2Request:
    """A decoded inference request: `feeds` {input name: array} plus what the response
    needs (`id`, and `outputs`: [(name, as_binary)] in the order to answer)."""

    __slots__ = ("id", "feeds", "outputs")

    def __init__(self, id, feeds, outputs):
        self.id, self.feeds, self.outputs = id, feeds, outputs


def decode(body, model, header_length=None):
    """V2Request from a request body (bytes); `header_length` is the value of
    Inference-Header-Content-Length, or None for a plain JSON body."""
    if header_length is not None:
        head, raw = binary.split_body(body, header_length)
    else:
        head, raw = body, memoryview(b"")
    obj = load_object(head)
    request_id = obj.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise RequestError(f"'id' must be a string, got {brief(request_id)}")
    params = _parameters(obj, "request")
    binary_default = params.get("binary_data_output", False)
    if not isinstance(binary_default, bool):
        raise RequestError(f"request parameter 'binary_data_output' must be true or false, "
                           f"got {brief(binary_default)}")
    feeds = _inputs(obj, model, raw)
    return V2Request(request_id, feeds, _outputs(obj, model, binary_default))


def _parameters(obj, where):
    params = obj.get("parameters")
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise RequestError(f"{where}: 'parameters' must be a JSON object, got {brief(params)}")
    return params


def _inputs(obj, model, raw):
    inputs = obj.get("inputs")
    if inputs is None:
        raise RequestError(f"request has no 'inputs'; model {model.name!r} takes "
                           f"{list(model.input_specs)}")
    if not isinstance(inputs, list) or not inputs:
        raise RequestError("'inputs' must be a non-empty list of tensors")
    feeds = {}
    offset = 0
    for i, tensor in enumerate(inputs):
        if not isinstance(tensor, dict):
            raise RequestError(f"inputs[{i}] must be a JSON object with name, shape, "
                               f"datatype and data")
        name = tensor.get("name")
        if not isinstance(name, str):
            raise RequestError(f"inputs[{i}] has no 'name' string")
        where = f"input {brief(name)}"
        spec = model.input_specs.get(name)
        if spec is None:
            raise RequestError(f"{where} is not an input of model {model.name!r}; its "
                               f"inputs are {list(model.input_specs)}")
        if name in feeds:
            raise RequestError(f"{where} is given twice")
        if "datatype" not in tensor:
            raise RequestError(f"{where} has no 'datatype'")
        dtype = v2_dtype(tensor["datatype"], where)
        want = model.input_datatypes[name]
        if tensor["datatype"] != want:
            raise RequestError(f"{where} has datatype {want} in model {model.name!r}, got "
                               f"{tensor['datatype']} (the v2 protocol does not cast)")
        if "shape" not in tensor:
            raise RequestError(f"{where} has no 'shape'")
        shape = check_shape(tensor["shape"], where)
        params = _parameters(tensor, where)
        for key in UNSUPPORTED_PARAMETERS:
            if key in params:
                raise RequestError(f"{where}: parameter {key!r} (shared memory) is not "
                                   f"supported by this server")
        size = params.get("binary_data_size")
        if size is not None:
            if "data" in tensor:
                raise RequestError(f"{where} has both 'data' and a binary_data_size "
                                   f"parameter")
            if type(size) is not int or size < 0:
                raise RequestError(f"{where}: binary_data_size must be a non-negative "
                                   f"integer, got {brief(size)}")
            if offset + size > len(raw):
                raise RequestError(f"{where}: binary_data_size {size} at offset {offset} "
                                   f"runs past the {len(raw)} bytes that follow the JSON "
                                   f"header")
            arr = binary.tensor_from_bytes(raw[offset:offset + size], dtype, shape, where)
            offset += size
        else:
            if "data" not in tensor:
                raise RequestError(f"{where} has neither 'data' nor a binary_data_size "
                                   f"parameter")
            arr = array_from_json(tensor["data"], dtype, where)
            count = math.prod(shape)
            if arr.size != count:
                raise RequestError(f"{where}: 'data' has {arr.size} values but shape "
                                   f"{list(shape)} needs {count}")
            arr = arr.reshape(shape)
        check_against_model(arr, spec, where)
        feeds[name] = arr
    if offset != len(raw):
        raise RequestError(f"binary sizes do not add up: the inputs' binary_data_size total "
                           f"{offset} bytes but {len(raw)} bytes follow the JSON header")
    missing = [n for n in model.input_specs if n not in feeds]
    if missing:
        raise RequestError(f"input {missing[0]!r} is missing; model {model.name!r} takes "
                           f"{list(model.input_specs)}")
    return feeds


def _outputs(obj, model, binary_default):
    requested = obj.get("outputs")
    if requested is None:
        return [(n, binary_default) for n in model.output_names]
    if not isinstance(requested, list):
        raise RequestError("'outputs' must be a list of {\"name\": ...} objects")
    plan, seen = [], set()
    for i, out in enumerate(requested):
        if not isinstance(out, dict) or not isinstance(out.get("name"), str):
            raise RequestError(f"outputs[{i}] must be a JSON object with a 'name' string")
        name = out["name"]
        if name not in model.output_set:
            raise RequestError(f"output {brief(name)} is not an output of model {model.name!r}; "
                               f"its outputs are {model.output_names}")
        if name in seen:
            raise RequestError(f"output {name!r} is requested twice")
        seen.add(name)
        params = _parameters(out, f"output {name!r}")
        if params.get("classification"):
            raise RequestError(f"output {name!r}: the classification extension is not "
                               f"supported by this server")
        for key in UNSUPPORTED_PARAMETERS:
            if key in params:
                raise RequestError(f"output {name!r}: parameter {key!r} (shared memory) "
                                   f"is not supported by this server")
        as_binary = params.get("binary_data", binary_default)
        if not isinstance(as_binary, bool):
            raise RequestError(f"output {name!r}: parameter 'binary_data' must be true or "
                               f"false, got {brief(as_binary)}")
        plan.append((name, as_binary))
    return plan if plan else [(n, binary_default) for n in model.output_names]


def encode(model, request, results):
    """(body bytes, headers) answering `request` with `results` {output name: array}."""
    outputs, blobs = [], []
    for name, as_binary in request.outputs:
        arr = results[name]
        entry = {"name": name, "datatype": v2_name(arr.dtype), "shape": list(arr.shape)}
        if as_binary:
            raw = binary.tensor_to_bytes(arr)
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            entry["data"] = json_values(arr.reshape(-1))
        outputs.append(entry)
    response = {"model_name": model.name, "model_version": "1"}
    if request.id is not None:
        response["id"] = request.id
    response["outputs"] = outputs
    head = dumps(response)
    if not blobs:
        return head, {"content-type": "application/json"}
    return b"".join([head] + blobs), {
        "content-type": "application/octet-stream",
        "inference-header-content-length": str(len(head))}
