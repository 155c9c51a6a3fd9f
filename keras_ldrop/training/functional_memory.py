"""Keras functional models that let go of each layer's output after its last use.

Keras 3.15 runs a functional model by keeping every layer's output in a dict
until the whole forward pass ends (`keras.src.ops.function.Function`'s
`_run_through_graph`). Under JAX and TensorFlow the step is traced and
compiled, and the compiler frees what is no longer needed; the torch backend
runs eagerly, so an output autograd does not keep for the backward pass (a
BatchNorm's output before its ReLU, a residual sum before its ReLU) stays in
memory until the last layer has run. `release_layer_outputs()` drops each
output from that dict after the last layer that reads it. A ResNet-50 step
(112 px, 48 images) on the torch backend peaked at 2.10 GB of tensors, 1.27 GB
with this (plain PyTorch: 1.07 GB; BUILD_NOTES.md, "The torch backend's
memory"). Values are unchanged: the same layers run in the same order on the
same tensors. Symbolic runs (building a model) keep Keras' own.

Example:

>>> import keras
>>> from keras_ldrop.training import functional_memory
>>> functional_memory.release_layer_outputs()
>>> inputs = keras.Input((3,))
>>> model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Dense(4)(inputs)))
>>> tuple(model(keras.ops.ones((1, 3))).shape)
(1, 2)
>>> functional_memory.keep_layer_outputs()
"""

from keras_ldrop.training.keras_swap import KerasSwap


def release_layer_outputs():
    """Makes functional models drop each layer's output after its last use.

    Idempotent; `keep_layer_outputs()` undoes it.
    """
    _SWAP.apply()


def keep_layer_outputs():
    """Restores Keras' own: every output kept until the forward pass ends."""
    _SWAP.undo()


def releases_layer_outputs():
    """Whether `release_layer_outputs()` is in effect."""
    return _SWAP.applied


def _run_through_graph(self, inputs, operation_fn=lambda op: op, call_fn=None):
    """Keras' `Function._run_through_graph`, dropping outputs after their last use."""
    if call_fn is not None:
        return _SWAP.keras_own["_run_through_graph"](self, inputs, operation_fn, call_fn)
    from keras.src import tree

    nodes = [
        node
        for depth in sorted(self._nodes_by_depth, reverse=True)
        for node in self._nodes_by_depth[depth]
        if node.operation and not node.is_input
    ]
    last_use = {id(x): position for position, node in enumerate(nodes) for x in node.input_tensors}
    for x in self.outputs:
        last_use[id(x)] = len(nodes)
    tensors = {id(x): y for x, y in zip(self.inputs, tree.flatten(inputs))}
    for position, node in enumerate(nodes):
        if any(id(x) not in tensors for x in node.input_tensors):
            continue  # not computable from these inputs, as in Keras' own
        args, kwargs = node.arguments.fill_in(tensors)
        operation = operation_fn(self._get_operation_for_node(node))
        tensors.update(zip(map(id, node.outputs), tree.flatten(operation(*args, **kwargs))))
        del args, kwargs  # so that the inputs popped below are freed now
        for x in node.input_tensors:
            if last_use[id(x)] == position:
                tensors.pop(id(x), None)
    # Keras checked, when the model was built, that every output is computed.
    return tree.pack_sequence_as(self._outputs_struct, [tensors[id(x)] for x in self.outputs])


_SWAP = KerasSwap(
    "Releasing layer outputs",
    "keras.src.ops.function.Function",
    _run_through_graph=_run_through_graph,
)
