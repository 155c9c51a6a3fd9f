"""Loads an absl app of `apps/` once per test process and runs its main in-process."""

import functools
import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@functools.cache
def load_app(name):
    """Imports `apps/<name>.py` as a module, once: its flags join the process' flags, and absl
    refuses a second definition of a flag from a second copy of the module."""
    spec = importlib.util.spec_from_file_location(
        f"{name}_app", os.path.join(ROOT, "apps", f"{name}.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_app(app, name, *argv):
    """Parses `argv` and runs `app.main`; returns the exit message, or None when it ends normally."""
    app.FLAGS.unparse_flags()
    remaining = app.FLAGS([name, *argv])
    try:
        app.main(remaining)
    except SystemExit as exit_info:
        return str(exit_info.code)
    return None
