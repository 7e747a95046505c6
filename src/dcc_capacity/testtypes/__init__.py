"""Test types as plugins: one module per type (load, stress, soak, spike, catchup, noisy_neighbour, negative/,
scale), each a spec class with its knobs and a :class:`~dcc_capacity.testtypes.base.TestType` with its hooks
(shape, emulator settings, run.json facts, report section), listed in ``registry``. Adding a type is one
module, one report template (reports/) and one catalogue entry (volume_profiles/nfr-default.yaml).
"""
