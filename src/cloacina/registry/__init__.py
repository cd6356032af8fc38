"""The package registry (register, list, unregister) and the loader that runs package tasks
in isolated processes."""
