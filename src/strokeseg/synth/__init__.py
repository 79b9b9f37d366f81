"""Embedded synthetic stroke cohorts (no download needed): SynthATLAS (T1 MRI) and SynthCT.

See ``docs/synthetic.md``; ``strokeseg synth atlas|ct --out DIR`` writes them.
"""
