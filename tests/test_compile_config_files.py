"""load_model compiles a model as Keras does: from a .h5's training_config and from a .keras
archive's compile_config (real Keras 3 and tf-keras files); metrics modelkit lacks never
block a load, a custom loss needs custom_objects as in Keras."""

import os
import warnings

import numpy as np
import pytest

from modelkit import backend as K
from modelkit.errors import ModelLoadError
from modelkit.models import load_model

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def test_keras3_archive_is_compiled_with_its_losses_and_metrics():
    model = load_model(os.path.join(FIXTURES, "keras3", "functional_multi.keras"))
    assert model.compiled_loss.fn_names == ["mean_squared_error", "binary_crossentropy"]
    assert type(model.optimizer).__name__ == "RMSprop"      # Keras 3 keeps no optimizer there
    mlp = load_model(os.path.join(FIXTURES, "keras3", "mlp.keras"))
    x = np.random.default_rng(0).random((4,) + tuple(mlp.input_shape[1:]), dtype=np.float32)
    y = np.eye(mlp.output_shape[-1], dtype=np.float32)[[0, 1, 0, 1]]
    loss, acc = mlp.evaluate(x, y, verbose=0)                # was NotCompiledError
    assert np.isfinite(loss) and 0 <= acc <= 1


@pytest.mark.parametrize("ext", ["h5", "keras"])
def test_metrics_modelkit_lacks_are_left_out_with_a_warning(ext):
    with pytest.warns(UserWarning, match=r"\['AUC', 'Precision'\]"):
        model = load_model(os.path.join(FIXTURES, "compiled", f"auc_metrics.{ext}"))
    assert type(model.optimizer).__name__ == "RMSprop"
    logs = model.evaluate(np.ones((2, 3), "float32"), np.ones((2, 2), "float32"), verbose=0,
                          return_dict=True)
    assert set(logs) == {"loss", "accuracy"}


def test_custom_loss_function_reference_needs_custom_objects():
    path = os.path.join(FIXTURES, "compiled", "custom_loss.keras")
    with pytest.raises(ModelLoadError, match="my_loss"):
        load_model(path)

    def my_loss(y, p):
        return K.mean(K.square(y - p))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load_model(path, custom_objects={"my_loss": my_loss})
    assert model.compiled_loss.fn_names == ["my_loss"]
    assert type(model.optimizer).__name__ == "Adam"
    assert model.optimizer.get_config()["learning_rate"] == pytest.approx(0.005)
    assert load_model(path, compile=False).optimizer is None


def test_keras_archive_written_by_modelkit_keeps_its_compile_settings(tmp_path):
    """Checked by hand in Keras 3.15: keras.saving.load_model of such a file compiles it with
    the same optimizer, losses, loss weights and metrics and evaluates to the same numbers."""
    import json
    import zipfile
    from modelkit.layers import Dense, Input
    from modelkit.models import Model
    from modelkit.optimizers import SGD
    a = Input((3,))
    model = Model(a, [Dense(2, name="o1")(a), Dense(1, activation="sigmoid", name="o2")(a)])
    model.compile(SGD(learning_rate=0.1, momentum=0.9), ["mse", "binary_crossentropy"],
                  loss_weights=[1.0, 0.5], metrics=["mae"])
    model.save(tmp_path / "m.keras")
    cc = json.loads(zipfile.ZipFile(tmp_path / "m.keras").read("config.json"))["compile_config"]
    assert cc["optimizer"]["module"] == "keras.optimizers"
    assert cc["optimizer"]["class_name"] == "SGD" and "decay" not in cc["optimizer"]["config"]
    assert cc["metrics"] == [["mae"], ["mae"]] and cc["loss_weights"] == [1.0, 0.5]
    back = load_model(tmp_path / "m.keras")
    assert type(back.optimizer).__name__ == "SGD"
    assert back.optimizer.get_config()["momentum"] == pytest.approx(0.9)
    x, ys = np.ones((4, 3), "float32"), [np.ones((4, 2), "float32"), np.ones((4, 1), "float32")]
    assert back.evaluate(x, ys, verbose=0, return_dict=True) == \
        pytest.approx(model.evaluate(x, ys, verbose=0, return_dict=True))
