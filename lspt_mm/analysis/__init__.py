"""Cost and attention analysis helpers for ``tools/analysis_tools``."""
from .flops import METHOD_SPECS, analytic_flops, count_flops, flop_counter

__all__ = ['METHOD_SPECS', 'analytic_flops', 'count_flops', 'flop_counter']
