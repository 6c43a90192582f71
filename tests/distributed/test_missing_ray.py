"""Without Ray: `import modelkit` and `modelkit.distributed` load neither Ray nor pyarrow,
and every Ray feature says which extra to install."""

import builtins
import json
import subprocess
import sys

import numpy as np
import pytest
from distributed_kit import mlp_model, npy_shards

from modelkit.errors import MissingDependencyError


def _loaded(statement):
    code = (f"import sys; {statement}; import json; "
            "print(json.dumps(sorted(m for m in ('ray', 'pyarrow', 'pandas') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, timeout=120).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("statement", [
    "import modelkit", "import modelkit.distributed",
    "import modelkit.distributed.files, modelkit.distributed.data, modelkit.distributed.serve",
    "from modelkit.cli.main import build_parser; build_parser('predict'); build_parser('serve')"])
def test_importing_loads_no_ray(statement):
    assert _loaded(statement) == []


@pytest.fixture
def no_ray(monkeypatch):
    real_import = builtins.__import__

    def hide(name, *args, **kwargs):
        if name.split(".")[0] in ("ray", "pyarrow"):
            raise ImportError(f"No module named {name.split('.')[0]!r}")
        return real_import(name, *args, **kwargs)
    for mod in [m for m in sys.modules if m.split(".")[0] in ("ray", "pyarrow")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setattr(builtins, "__import__", hide)


def test_every_ray_feature_names_the_extra(no_ray, tmp_path):
    from modelkit.distributed import predict_dataset, predict_files, serve_deployment
    model = mlp_model(tmp_path / "m.onnx")
    npy_shards(tmp_path / "in", [4])
    extra = r"pip install 'modelkit\[ray\]'"
    with pytest.raises(MissingDependencyError, match=f"predict_dataset needs ray.*{extra}"):
        predict_dataset(model, object())
    with pytest.raises(MissingDependencyError, match=f"serve_deployment needs ray.*{extra}"):
        serve_deployment({"m": model})
    with pytest.raises(MissingDependencyError, match=f"predict --engine ray needs ray.*{extra}"):
        predict_files(model, str(tmp_path / "in"), str(tmp_path / "out"), engine="ray")
    with pytest.raises(MissingDependencyError, match=f"reading .parquet shards needs pyarrow"):
        from modelkit.distributed.shards import describe
        describe(0, str(tmp_path / "x.parquet"))
    # the local engine on numpy shards needs neither
    report = predict_files(model, str(tmp_path / "in"), str(tmp_path / "out"))
    assert report.rows == 4 and np.load(tmp_path / "out/part-00.npy").shape == (4, 3)


def test_cli_says_what_to_install(no_ray, tmp_path, capsys):
    from modelkit.cli.main import main
    model = mlp_model(tmp_path / "m.onnx")
    npy_shards(tmp_path / "in", [4])
    assert main(["predict", model, "-i", str(tmp_path / "in"), "-o", str(tmp_path / "o/"),
                 "--engine", "ray"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("modelkit: error: predict --engine ray needs ray")
    assert "pip install 'modelkit[ray]'" in err[0]
    assert main(["serve", model, "--engine", "ray", "--port", "8123"]) == 1
    assert "serve --engine ray needs ray" in capsys.readouterr().err
