"""Test types (load, stress, soak, ..., negative): what is particular to each one.
"""
