"""Training on Lightning: typed config, the LightningModule, the data module and the run folder."""
