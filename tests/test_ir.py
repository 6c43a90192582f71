"""The IR's own contract: validation names the node and the problem; JSON round trips."""

import numpy as np
import pytest

from modelkit.errors import IRError
from modelkit.ir import Graph, Node, TensorRef, TensorSpec, TrainingConfig


def chain():
    w = {"d/kernel": np.ones((3, 2), "float32"), "d/bias": np.zeros(2, "float32")}
    return Graph("g", [TensorSpec("x", (None, 3))], [TensorRef("a")],
                 [Node("d", "Dense", {"units": 2}, [[TensorRef("x")]], ["d/kernel", "d/bias"]),
                  Node("a", "Activation", {"activation": "relu"}, [[TensorRef("d")]])],
                 weights=w, training=TrainingConfig({"class_name": "SGD", "config": {}}, "mse"),
                 metadata={"source": "test"})


def test_valid_graph_and_json_round_trip():
    g = chain().validate()
    again = Graph.from_json(g.to_json(), weights=g.weights).validate()
    assert again.to_dict() == g.to_dict()
    assert [(n.name, ci) for n, ci in again.call_order()] == [("d", 0), ("a", 0)]


@pytest.mark.parametrize("mutate, message", [
    (lambda g: g.nodes[1].calls.__setitem__(0, [TensorRef("nope")]),
     "Node 'a' call 0: refers to 'nope'"),
    (lambda g: g.nodes[1].calls.__setitem__(0, [TensorRef("d", 1)]),
     "'d' has 1 call.*out of range"),
    (lambda g: g.weights.pop("d/bias"), "Node 'd': weight 'd/bias' is missing"),
    (lambda g: g.nodes.append(Node("d", "Dense", {}, [[TensorRef("x")]])), "'d'.*used twice"),
    (lambda g: g.nodes[0].calls.clear(), "Node 'd' \\(Dense\\) is never called"),
    (lambda g: g.nodes[0].calls.__setitem__(0, [TensorRef("a")]), "cycle"),
    (lambda g: g.outputs.__setitem__(0, TensorRef("zzz")), "output: refers to 'zzz'"),
    (lambda g: setattr(g.nodes[0], "config", []), "config must be a dict"),
    (lambda g: g.nodes.append(Node("m", "Functional", {}, [[TensorRef("x")]])),
     "nested Functional has no subgraph"),
])
def test_validate_names_the_node_and_the_problem(mutate, message):
    g = chain()
    mutate(g)
    with pytest.raises(IRError, match=message):
        g.validate()


def test_call_order_places_a_shared_layers_later_call_after_its_inputs():
    g = Graph("g", [TensorSpec("x", (None, 2))], [TensorRef("d", 1)],
              [Node("d", "Dense", {"units": 2}, [[TensorRef("x")], [TensorRef("b")]]),
               Node("b", "Activation", {"activation": "tanh"}, [[TensorRef("d", 0)]])])
    g.validate()
    assert [(n.name, ci) for n, ci in g.call_order()] == [("d", 0), ("b", 0), ("d", 1)]


def test_malformed_json_is_an_ir_error():
    with pytest.raises(IRError, match="not valid JSON"):
        Graph.from_json("{nope")
    with pytest.raises(IRError, match="Malformed"):
        Graph.from_dict({"name": "g"})
