"""The load code that runs inside Locust processes (master, workers): the open-model arrival loop, the
user classes, target adapters, the callback listener, records, the shapes and the live progress line.

This package module imports nothing, so ``dcc_capacity.load.records`` can be read by the report without
pulling in Locust and its gevent patching.
"""
