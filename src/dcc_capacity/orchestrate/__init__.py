"""The parent process of ``dcc-capacity run``: checks input, starts the embedded emulator, Locust (one
process or master + workers), the callback relay and the telemetry collector, writes run.json and calls
the report. Never imports Locust or gevent (they run as subprocesses).
"""
