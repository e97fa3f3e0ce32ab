"""Hostile input as a standing test: one registry of fuzz targets over every parser of
outside bytes, run by the pytest suite (bounded), by atheris (coverage-guided, bounded) and by
``bench/fuzz.py`` (a million cases)."""
