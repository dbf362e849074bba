"""Test support shared by tests, benchmarks and examples; not part of the shipped package.

``support.synth`` builds frames and capture files. Pytest finds this package through
``pythonpath = ["tests"]`` (pyproject.toml); scripts outside pytest put ``tests/`` on
``sys.path`` themselves.
"""
