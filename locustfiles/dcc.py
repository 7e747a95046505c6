"""All DUIS user classes driven by the volume model: ``locust -f locustfiles/dcc.py`` (options: --help).

Example (an emulator on :8080 posting callbacks to :9001)::

    dcc-capacity emulator --port 8080 --callback-url http://127.0.0.1:9001/ &
    locust -f locustfiles/dcc.py --headless --host http://127.0.0.1:8080 --callback-port 9001 \\
        --dcc-profile volume_profiles/foc.yaml --dcc-sp DSP --dcc-slot night --dcc-duration 30s --run-dir results/x
"""

from dcc_capacity.load.users.locustfile import *  # noqa: F403
from dcc_capacity.load.users.locustfile import __all__  # noqa: F401
