"""dcc-capacity: SCTAD System Capacity Testing for DCC Service Providers, on Locust."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
