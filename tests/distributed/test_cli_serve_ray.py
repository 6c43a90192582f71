"""`modelkit serve --engine ray` wiring: the options reach `modelkit.distributed.serve.run`
(which test_ray_serve.py runs on Ray), and misuse is a usage error."""

import pytest
from distributed_kit import mlp_model

from modelkit.cli.main import main


def test_options_reach_the_ray_deployment(tmp_path, monkeypatch, capsys):
    from modelkit.distributed import serve
    calls = []

    def fake_run(models, **kwargs):
        calls.append((models, kwargs))
        kwargs["on_ready"]()
    monkeypatch.setattr(serve, "run", fake_run)
    model = mlp_model(tmp_path / "m.onnx")
    assert main(["serve", f"clf={model}", "--engine", "ray", "--replicas", "3", "--address",
                 "auto", "--port", "8300", "--max-batch-size", "16", "--threads", "2",
                 "--device", "cpu"]) == 0
    (models, kwargs), = calls
    assert models == [f"clf={model}"]
    kwargs.pop("on_ready")
    assert kwargs == dict(address="auto", host="127.0.0.1", port=8300, replicas=3,
                          device="cpu", max_batch_size=16, batch_timeout_ms=2.0, threads=2,
                          max_request_mb=64)
    assert "serving 3 Ray Serve replicas on http://127.0.0.1:8300" in capsys.readouterr().out


@pytest.mark.parametrize("extra, match", [
    (["--engine", "ray", "--replicas", "0"], "--replicas must be at least 1"),
    (["--engine", "ray", "--port", "0"], "needs a fixed --port"),
    (["--replicas", "2"], "--replicas and --address need --engine ray"),
    (["--address", "auto"], "--replicas and --address need --engine ray"),
])
def test_usage_errors(tmp_path, capsys, extra, match):
    assert main(["serve", str(tmp_path / "m.onnx"), *extra]) == 2
    assert match in capsys.readouterr().err


def test_serve_deployment_checks_its_arguments_before_ray_runs(tmp_path):
    from modelkit.distributed import serve_deployment
    from modelkit.errors import ConfigError, ModelLoadError
    model = mlp_model(tmp_path / "m.onnx")
    with pytest.raises(ConfigError, match="replicas must be a positive integer, got 0"):
        serve_deployment({"m": model}, replicas=0)
    with pytest.raises(ModelLoadError, match="Model .nope.: file not found: .*nope.onnx"):
        serve_deployment([str(tmp_path / "nope.onnx")])
    app = serve_deployment([f"clf={model}", str(model)], replicas=2, device="cpu")
    deployment = app._bound_deployment
    assert (deployment.name, deployment.num_replicas) == ("modelkit", 2)
    assert deployment.ray_actor_options["num_cpus"] == 1
    models, options = app._bound_deployment.init_args
    assert sorted(models) == ["clf", "m"] and isinstance(models["clf"], bytes)
    assert options["threads"] == 1 and options["device"] == "cpu"
