"""onnxruntime-backed inference: sessions, batching.

    from modelkit.runtime import InferenceSession
    sess = InferenceSession("m.onnx", device="auto")
    y = sess.predict(x, batch_size=256)
"""

from .batching import DynamicBatcher, concat_batches, iter_batches
from .devices import cuda_status
from .session import InferenceSession, IOSpec

__all__ = ["InferenceSession", "IOSpec", "DynamicBatcher", "cuda_status", "iter_batches",
           "concat_batches"]
