"""The Locust user classes, one per Table A2 row (plus SECMP0192 scheduling), and their rate keys.

Each class's target rate (SRV/s) comes from the running shape under the class
name; ``ROW_CLASSES`` maps the volume model's rows to these names. A journey
class sends its row's SRVs in order for ONE installation (SMETS2 rows take
SMETS2 installations, migration rows SMETS1 ones), each step starting when
the previous one is done (its async response where the real process waits for
one), so its arrivals/s = row rate / journey length (``srvs_per_arrival``).
The ``alerts`` row has no class: the SUT generates alerts (northbound).

What each class sends follows the profile (:mod:`dcc_capacity.model.srvmix`, via
the kit): the journeys are the profile's (its ``journeys`` overrides
included), the fleet has its SMETS1 and prepayment shares, and the Bau
class sends top-ups (2.2, to prepayment installations) at the share Table
A5's BAU formula gives for the SP and slot.
"""

from __future__ import annotations

from typing import ClassVar

from dcc_capacity.duis.mix import BauMix
from dcc_capacity.duis.scheduled import read_request_id, read_schedule_id
from dcc_capacity.load.users.base import DuisUser, Journey
from dcc_capacity.model.srvmix import PREPAY_ONLY, ROW_CLASSES
from dcc_capacity.model.volume import DEFAULT_JOURNEYS, METER_READ_PREPAY_VARIANTS, METER_READ_VARIANTS

__all__ = ["ALL_CLASSES", "ROW_CLASSES", "Bau", "MeterReads", "NoisyNeighbour", "S1MigrationCredit",
           "S1MigrationPrepay", "S2IcCredit", "S2IcPrepay", "Secmp0192Schedules"]


class MeterReads(DuisUser):
    """Scheduled-style reads: 4.6.1 / 4.8.1 for every meter, plus 4.14 for prepayment meters."""

    abstract = False

    def journey(self) -> Journey:
        inst = self.kit.installation(self.rng)
        variants = METER_READ_VARIANTS + (METER_READ_PREPAY_VARIANTS if inst.prepay else ())
        yield from self.srv(variants[self.rng.randrange(len(variants))], inst, final=True)
        return None  # the journey's one SRV is recorded; nothing follows it


class _JourneyUser(DuisUser):
    abstract = True
    row: ClassVar[str] = ""
    smets: ClassVar[int] = 2
    prepay: ClassVar[bool] = False
    steps: ClassVar[tuple[str, ...]] = ()
    """Table A2's default journey; each instance sends the kit's (the profile's) instead."""

    def __init__(self, environment: object) -> None:
        super().__init__(environment)
        steps = self.kit.journeys.get(self.row) or type(self).steps
        self.steps = steps  # type: ignore[misc]  # per process: the profile's journey
        self.srvs_per_arrival = float(len(steps))  # type: ignore[misc]  # arrivals/s = row rate / its length

    def journey(self) -> Journey:
        inst = self.kit.installation(self.rng, self.smets, self.prepay)
        last = len(self.steps) - 1
        for i, variant in enumerate(self.steps):
            # Each step waits for the previous one's response (parked, holding no slot); the last one's response
            # ends nothing, so the journey ends at its acknowledgement.
            res = yield from self.srv(variant, inst, final=i == last)
            if res is not None and not res.ok:
                return res  # a failed step ends the journey (after its retries)
        return None


def _journey(name: str, row: str, smets: int, prepay: bool) -> type[_JourneyUser]:
    steps = DEFAULT_JOURNEYS[row]
    return type(name, (_JourneyUser,), {"abstract": False, "row": row, "smets": smets, "prepay": prepay,
                                        "steps": steps, "srvs_per_arrival": float(len(steps)),
                                        "__doc__": f"Table A2 {row}: {', '.join(steps)} for one installation.",
                                        "__module__": __name__})


S2IcCredit = _journey("S2IcCredit", "s2_ic_credit", 2, False)
S2IcPrepay = _journey("S2IcPrepay", "s2_ic_prepay", 2, True)
S1MigrationCredit = _journey("S1MigrationCredit", "s1_migration_credit", 1, False)
S1MigrationPrepay = _journey("S1MigrationPrepay", "s1_migration_prepay", 1, True)


class Bau(DuisUser):
    """All other SRVs: the kit's BAU make-up (top-ups at the profile's share, the rest by bau_mix.csv)."""

    abstract = False
    _pick = None

    def journey(self) -> Journey:
        if self._pick is None:
            self._pick = (self.kit.bau or BauMix.load()).picker(self.rng, spread=True)
        variant = self._pick()
        prepay = True if variant in PREPAY_ONLY else None  # a top-up goes to a prepayment meter
        for _ in range(5):  # a variant may need a device the installation lacks (e.g. GSME): try another
            res = yield from self.srv(variant, self.kit.installation(self.rng, prepay=prepay), final=True)
            if res is not None:
                return res
        return None


class Secmp0192Schedules(DuisUser):
    """SECMP0192: 5.1 Create Schedule for 4.3 / 4.4.3 on SMETS1 installations (non-device, answered at once)."""

    abstract = False

    def journey(self) -> Journey:
        inst = self.kit.installation(self.rng, smets=1)
        scheduled = "4.3" if self.rng.random() < 0.5 else "4.4.3"
        res = yield from self.srv("5.1", inst, final=True, scheduled_variant=scheduled)
        sid = read_schedule_id(res.ack_body) if res is not None and res.ok else None
        # its executions' responses come to this listener
        if sid is not None and res is not None and self.ctx.callbacks is not None:
            self.ctx.callbacks.expect_schedule(sid, read_request_id(res.ack_body), user_class=type(self).__name__)
        return res


class NoisyNeighbour(MeterReads):
    """Meter reads sent by ONE Service User (the first supplier), for the noisy-neighbour test's burst."""

    abstract = False

    def journey(self) -> Journey:
        inst = self.kit.installation(self.rng)
        yield from self.srv("4.6.1", inst, final=True, originator=self.kit.noisy_originator())
        return None  # the journey's one SRV is recorded; nothing follows it


ALL_CLASSES = (MeterReads, S2IcCredit, S2IcPrepay, S1MigrationCredit, S1MigrationPrepay, Bau, Secmp0192Schedules,
               NoisyNeighbour)
