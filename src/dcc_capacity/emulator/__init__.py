"""The embedded system under test: a DCC User Gateway emulator (DSP / S1SP / DCO / CP).

Start it from code with :func:`start_emulator` (thread or subprocess), or
from the shell with ``dcc-capacity emulator``. See docs/emulator.md.
"""

from __future__ import annotations

from dcc_capacity.emulator import codes
from dcc_capacity.emulator.config import EmulatorConfig, load_config
from dcc_capacity.emulator.server import EmulatorHandle, serve, start_emulator

__all__ = ["EmulatorConfig", "EmulatorHandle", "codes", "load_config", "serve", "start_emulator"]
