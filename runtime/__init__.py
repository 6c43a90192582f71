"""onnxruntime-backed inference: sessions, batching."""
