"""What each subcommand does, as plain functions named as the command line names them.

:mod:`~strokeseg.jobs.train` (training with the post-processing fit), :mod:`~strokeseg.jobs.
evaluate` (a checkpoint on a test split), :mod:`~strokeseg.jobs.benchmark` (the paper's
tables), :mod:`~strokeseg.jobs.demo` and :mod:`~strokeseg.jobs.bids`. The modules of
:mod:`strokeseg.commands` parse arguments and make one call here.
"""
