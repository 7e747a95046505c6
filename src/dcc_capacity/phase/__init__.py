"""A whole System Capacity Test Phase: the plan, its runs, one completion report, phase against phase.

Modules: ``plan`` (the plan file and its validation), ``runner`` (`phase run`:
each test into its own run folder, resumable), ``evidence`` (reads a phase
folder back: runs, results, required vs tested), ``report`` (`phase report`:
the completion report, SCTAD 6.3.1-6.3.7), ``compare`` (`phase compare`,
SCTAD 3.3). It sits on top of ``run`` and ``report`` and changes neither's
run-folder contract: a phase is a folder of ordinary run folders.
"""
