"""What a person reads: per-scan HTML reports, the run index, evaluation reports, BIDS outputs.

Everything here works on arrays already computed by :mod:`strokeseg.inference` (the scan, its
mask and its probability map), so the reports do not depend on how the engine produced them.
"""
