"""The ``ccmon`` command line."""
