"""The LLM-ESR model with the item-cluster constraint, its objective and trainer.

A run is assembled in `model.pipeline` (dataset -> clusters -> model -> trainer); this package
file imports nothing, so importing one module of the package stays cheap.
"""
