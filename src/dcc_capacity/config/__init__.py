"""Files a user writes and how they are read: YAML/TOML loading with line numbers, schema validation with
one-line errors, the run configuration, redaction of secrets, the TLS model shared by the load side and the
emulator. Nothing here imports Locust.
"""
