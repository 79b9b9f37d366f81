"""Inference without training machinery: checkpoint loading, whole-volume prediction, export."""
