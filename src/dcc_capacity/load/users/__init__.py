"""Locust user classes that send signed DUIS SRVs per Table A2 row.

``classes`` (the user classes), ``base`` (DuisUser: the DUIS flow of one SRV,
ack classification), ``kit`` (per-process PKI, fleet, factory, pools),
``locustfile`` (options and the shape); row -> class name is the volume model's
(``model/srvmix.py`` ``ROW_CLASSES``). This package module imports nothing, so
importing ``dcc_capacity.load.users.kit`` does not pull in Locust (and its gevent patching).
"""
