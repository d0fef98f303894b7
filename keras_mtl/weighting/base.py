"""The base class of weighting methods: how per-task losses or gradients become one update."""


class WeightingMethod:
    """How an `MTLModel` combines its tasks' losses (or gradients) into one update.

    A method is a plain serializable value (`get_config` returns its `__init__` arguments).
    `MTLModel` calls `attach(model)` once, before training, so the method can create its
    state (as Keras variables of the model) and read the tasks' static `loss_weight`s.
    """

    def attach(self, model):
        """Called by `MTLModel` with the model the method will train."""

    def train_step(self, model, data, default_train_step):
        """One training step of `model` on `data`; the default is Keras' own step."""
        return default_train_step(data)

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"
