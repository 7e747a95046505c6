"""Running a test: spec and shapes (``spec``, ``shape``), the run folder and processes (``orchestrate``)."""
