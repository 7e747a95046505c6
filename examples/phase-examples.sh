#!/bin/sh
# Run the IOC and FOC example phases against the embedded emulator (a few minutes each on a 2-core box),
# write their completion reports, and compare the two phases (SCTAD 3.3). Outputs go to results/ (git-ignored).
#
#   sh examples/phase-examples.sh            # uses .venv/bin/dcc-capacity, else dcc-capacity on PATH
#
# Rerunning resumes: finished tests are not run again. The compare exits 1 when it flags a regression;
# the script carries on and prints its findings either way.
set -eu
cd "$(dirname "$0")/.."
DCC=.venv/bin/dcc-capacity
[ -x "$DCC" ] || DCC=dcc-capacity
for cap in ioc foc; do
  "$DCC" phase run "examples/phase-$cap.yaml" --out "results/phase-$cap" || echo "phase $cap: some tests did not pass (see the report)"
  "$DCC" phase report "results/phase-$cap" || echo "phase $cap: exit criteria not met (see the report)"
done
"$DCC" phase compare results/phase-ioc results/phase-foc --json results/phase-ioc-vs-foc.json || true
