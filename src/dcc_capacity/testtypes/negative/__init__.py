"""The negative test: the DUIS error-path cases (catalogue, request builder, Locust user), the SFTP
migration cases run by the parent, and the report's per-case verdicts.
"""
