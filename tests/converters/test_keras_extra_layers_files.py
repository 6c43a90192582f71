"""Rescaling and Identity in files real tf-keras 2.21 (.h5) and Keras 3.15 (.keras) wrote
(tests/fixtures/keras_extra_layers/make_extra_layers.py): loaded, predicting Keras's numbers,
and exported to ONNX with the same numbers."""

import os

import numpy as np
import pytest

from modelkit.models import load_model
from modelkit.runtime import InferenceSession

HERE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures",
                    "keras_extra_layers")


@pytest.mark.parametrize("name", ["tfk_rescaling.h5", "k3_rescaling.keras"])
def test_rescaling_and_identity_files(name, tmp_path):
    data = np.load(os.path.join(HERE, name.split(".")[0] + ".npz"))
    model = load_model(os.path.join(HERE, name))
    kinds = [type(la).__name__ for la in model.layers]
    assert kinds.count("Rescaling") == 2 and "Identity" in kinds
    np.testing.assert_allclose(model.predict(data["x"]), data["y"], rtol=1e-5, atol=1e-5)
    model.save(tmp_path / "m.onnx")
    got = InferenceSession(str(tmp_path / "m.onnx")).predict(data["x"])
    np.testing.assert_allclose(got, data["y"], rtol=1e-5, atol=1e-5)
