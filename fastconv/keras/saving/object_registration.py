"""Keras's registry of one's own classes: ``register_keras_serializable``, ``custom_object_scope``
and ``get_custom_objects``, so that a model of custom layers loads without ``custom_objects``.

A registered class is saved under its registered name ``"package>Name"`` and found by it (or by
its class name) when a file is loaded; lookup order as Keras's: the ``custom_objects`` argument,
the enclosing ``custom_object_scope``s, then the global registry.
"""
import threading

_GLOBAL_CUSTOM_OBJECTS = {}   # registered name -> class or function
_GLOBAL_CUSTOM_NAMES = {}     # class or function -> registered name
_scopes = threading.local()


def register_keras_serializable(package="Custom", name=None):
    """Decorator: ``@register_keras_serializable(package="my_package")`` on a class (with a
    ``get_config``) or a function."""
    if not isinstance(package, str) or ">" in package:
        raise ValueError(f"package must be a string without '>'. Received: package={package!r}")

    def decorator(arg):
        class_name = name if name is not None else getattr(arg, "__name__", None)
        if not isinstance(class_name, str):
            raise ValueError(f"Cannot register {arg!r}: it has no __name__; pass name=...")
        if isinstance(arg, type) and not hasattr(arg, "get_config"):
            raise ValueError("Cannot register a class that does not have a get_config() method.")
        registered_name = f"{package}>{class_name}"
        _GLOBAL_CUSTOM_OBJECTS[registered_name] = arg
        _GLOBAL_CUSTOM_NAMES[arg] = registered_name
        return arg

    return decorator


def get_registered_name(obj):
    """The name ``obj`` is saved under: its registered name, else its ``__name__``."""
    return _GLOBAL_CUSTOM_NAMES.get(obj, getattr(obj, "__name__", None))


def get_custom_objects():
    """The global registry (a dict; may be updated directly, as Keras's)."""
    return _GLOBAL_CUSTOM_OBJECTS


class CustomObjectScope:
    """``with custom_object_scope({"MyLayer": MyLayer}):`` loading finds these classes."""

    def __init__(self, custom_objects):
        if not isinstance(custom_objects, dict):
            raise TypeError(f"custom_objects must be a dict. Received: {custom_objects!r}")
        self.custom_objects = custom_objects

    def __enter__(self):
        stack = getattr(_scopes, "stack", None)
        if stack is None:
            stack = _scopes.stack = []
        stack.append(self.custom_objects)
        return self

    def __exit__(self, *exc):
        _scopes.stack.pop()


custom_object_scope = CustomObjectScope


def custom_objects_in_effect(custom_objects=None):
    """The classes a load may use beyond the built-in ones: the global registry, then the
    scopes (innermost last), then ``custom_objects`` (each overriding the previous)."""
    merged = dict(_GLOBAL_CUSTOM_OBJECTS)
    for scope in getattr(_scopes, "stack", ()):
        merged.update(scope)
    merged.update(custom_objects or {})
    return merged
