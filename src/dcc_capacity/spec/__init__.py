"""What a run is: the settings that decide its offered load (``model``: one pydantic model, each field declared
once; the test types add their knobs in :mod:`dcc_capacity.testtypes`), the surfaces generated from it
(``surfaces``: ``run`` flags and run-configuration keys; ``options``: Locust options and ``spec.json``), how a
spec resolves against the volume model into rates per user class (``resolve``), and the safety ceilings
(``safety``). Read by the parent and by every Locust process; free of Locust.
"""
