"""A library that warns the way frameworks do: a deprecation attributed to its
caller (``stacklevel=2``), and its own warning class with a "default" filter
installed at import, as Lightning does for its deprecations."""
import warnings


class LibDeprecationWarning(DeprecationWarning):
    pass


warnings.simplefilter("default", LibDeprecationWarning)


def old_api(x):
    warnings.warn("old_api() is deprecated, use new_api()", DeprecationWarning, stacklevel=2)
    return x


def lib_step(x):
    warnings.warn("lib_step: this argument will change", LibDeprecationWarning)
    return x
