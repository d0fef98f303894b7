"""Looking up registered classes (sharing strategies, weighting methods) as Keras' `get` does."""

import keras

from keras_mtl import errors


def lookup_class(registry, name, argument):
    """The class registered under `name` (case ignored); unknown names list the valid ones."""
    key = name.lower() if isinstance(name, str) else name
    if key not in registry:
        raise errors.ConfigError(
            f"Unknown `{argument}`: {name!r}. Valid names: {sorted(registry)}."
        )
    return registry[key]


def get(registry, base_class, identifier, argument):
    """An instance of `base_class` from a name, a config dict or an instance.

    A config dict is either Keras' serialized form (`keras.saving.serialize_keras_object`)
    or a short `{"class_name": name, "config": {...}}`, where the name is a registered name
    or a class name, case ignored.
    """
    if isinstance(identifier, base_class):
        return identifier
    if isinstance(identifier, str):
        return lookup_class(registry, identifier, argument)()
    if isinstance(identifier, dict) and isinstance(identifier.get("class_name"), str):
        if "registered_name" in identifier or "module" in identifier:
            instance = keras.saving.deserialize_keras_object(identifier)
        else:
            by_class = {cls.__name__.lower(): cls for cls in registry.values()}
            name = identifier["class_name"].lower()
            cls = registry.get(name) or by_class.get(name)
            if cls is None:
                raise errors.ConfigError(
                    f"Unknown `{argument}` class_name: {identifier['class_name']!r}. Valid "
                    f"names: {sorted(registry)}. Received: {argument}={identifier!r}"
                )
            instance = cls.from_config(identifier.get("config", {}))
        if isinstance(instance, base_class):
            return instance
    raise errors.ConfigError(
        f"`{argument}` must be a name, a config dict or a `{base_class.__name__}` instance. "
        f"Valid names: {sorted(registry)}. Received: {argument}={identifier!r}"
    )
