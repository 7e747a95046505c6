"""Alerts the emulated DCC sends unasked: device alerts at a configured rate, and SECMP0192's S1SP alert.

Device alerts (``alerts.enabled``) arrive as a Poisson stream at the
configured rate, each from a device/user pair recently seen in a request, so
the load side's listener sees alert traffic shaped like a live system's. The
S1SP alert (SECMP0192) answers a DCC-scheduled Create Schedule (5.1) for a
SMETS1 device whose scheduled SRV is not applicable to Command Variant 9.
Both go out through the app's callback sender, after the app's tamper fault.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from typing import TYPE_CHECKING

from dcc_capacity.duis.responses import build_dcc_alert, build_device_alert, response_id_for, s1sp_alert
from dcc_capacity.emulator import codes as C
from dcc_capacity.emulator.delivery import Delivery
from dcc_capacity.emulator.gateway import SECMP0192_VARIANTS, Accepted
from dcc_capacity.model.catalogue import catalogue

if TYPE_CHECKING:
    from dcc_capacity.emulator.app import EmulatorApp

__all__ = ["Alerts"]


class Alerts:
    """The alert sources of one emulator app."""

    def __init__(self, app: EmulatorApp) -> None:
        self.app = app
        self.recent: deque[tuple[str, str]] = deque(maxlen=10_000)
        """(device, user) of recent CV 1/5 requests: where device alerts come from."""
        self._counter = 0
        cfg = app.cfg.secmp0192
        self._s1sp_cv9 = frozenset(cfg.s1sp_cv9_variants) if cfg.s1sp_cv9_variants is not None \
            else frozenset(v for v, s in catalogue().items() if s.dcc_scheduled) | SECMP0192_VARIANTS

    def maybe_s1ve12(self, req: Accepted, schedule_id: int) -> bool:
        """SECMP0192: the S1SP alert for a SMETS1 schedule of an SRV that Command Variant 9 cannot carry.

        True when the S1SP refuses the schedule (it is then never executed)."""
        app = self.app
        variant = req.extras.get("scheduled_variant")
        if not req.extras.get("device_smets1") or not variant or variant in self._s1sp_cv9:
            return False
        url = app.cfg.callback_for(req.originator)
        if url is None:
            return True
        device = req.extras.get("device") or req.target

        def build() -> bytes:
            alert = s1sp_alert(app.signer, code=C.S1SP_ALERT_CV9, request_id=req.request_id, device_id=device,
                               info=f"SRV {variant} is not applicable to Command Variant 9", schedule_id=schedule_id)
            return app.tamper(build_dcc_alert(signer=app.signer, response_id=response_id_for(req.request_id),
                                              dcc_alert_code=C.DCC_ALERT_S1SP, alert=alert), "alert")

        app.metrics.inc("alert", "alerts")
        app.later(app.delay[True]["device"].sample(), Delivery(url, build, "alert", kind="alert"))
        return True

    async def loop(self) -> None:
        """Device alerts at ``alerts.effective_rate()`` per second, as a Poisson stream in 0.1 s ticks."""
        tick = 0.1
        while True:
            await asyncio.sleep(tick)
            lam = self.app.cfg.alerts.effective_rate() * tick
            n = self._poisson(lam)
            for _ in range(min(n, 10_000)):
                self.device_alert()

    def _poisson(self, lam: float) -> int:
        rng = self.app.rng
        if lam <= 0:
            return 0
        if lam > 30:
            return max(0, round(rng.gauss(lam, math.sqrt(lam))))
        limit, k, p = math.exp(-lam), 0, 1.0
        while k < 1000:
            p *= rng.random()
            if p <= limit:
                return k
            k += 1
        return k

    def device_alert(self) -> None:
        app = self.app
        if not self.recent:
            return
        device, user = self.recent[app.rng.randrange(len(self.recent))]
        url = app.cfg.callback_for(user)
        if url is None:
            return
        self._counter += 1
        rid = f"{device}:{user}:{self._counter}"
        code = app.rng.choice(app.cfg.alerts.codes)
        gbcs = app.rng.randbytes(24)
        app.metrics.inc("alert", "alerts")
        app.sender.put(Delivery(url, lambda: app.tamper(build_device_alert(
            signer=app.signer, response_id=rid, alert_code=code, gbcs=gbcs), "alert"), "alert", "alert"))
