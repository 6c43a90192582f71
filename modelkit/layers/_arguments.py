"""Forwarding a subclass's restated Keras signature to a shared base `__init__`.

Layer families (the convolutions, the recurrent cells) restate Keras's signature and
defaults in each public class so that positional calls and introspection match Keras,
then hand every argument to one base class as keywords: `super().__init__(**arguments(
locals()))`.
"""


def arguments(local_vars, drop=()):
    """An `__init__`'s arguments (its `locals()`) as keywords, `**kwargs` merged in;
    `self`, `__class__` and the names in `drop` (options the subclass keeps) left out."""
    skip = {"self", "__class__", "kwargs", *drop}
    args = {k: v for k, v in local_vars.items() if k not in skip}
    return {**args, **local_vars["kwargs"]}
