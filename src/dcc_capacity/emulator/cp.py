"""CP placeholder (SFTP) - replaced below."""
from __future__ import annotations
