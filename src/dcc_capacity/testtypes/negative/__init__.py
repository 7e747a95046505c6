"""The negative test: the DUIS error-path cases (catalogue, request builder), the SFTP migration cases run by
the parent, and the report's per-case verdicts. Its Locust user (``NegativeCases``) is load code:
load/users/negative.py.
"""
