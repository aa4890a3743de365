"""The invoke tasks, one module per concern; ``tasks.py`` puts them in namespaces."""
