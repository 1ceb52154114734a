"""Analysis library behind ``tools/analysis_tools``.

- :mod:`.flops`: analytic FLOP model and a counter (CPU fused attention
  included);
- :mod:`.cost`: what a method's train step and inference cost on the model
  and optimiser its config builds (time, memory terms, FLOPs, frozen
  checks), per job or interleaved;
- :mod:`.cost_report`: tables and PASS/FAIL targets of cost records;
- :mod:`.tokens`: attention maps and prompt-patch similarity.
"""

from .flops import METHOD_SPECS, analytic_flops, count_flops, flop_counter

# .cost and .cost_report are imported by name (``python -m
# lspt_mm.analysis.cost`` is the measuring worker, so the package does not
# import it first)
__all__ = ['METHOD_SPECS', 'analytic_flops', 'count_flops', 'flop_counter']
