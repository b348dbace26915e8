"""Evaluation in the order data flows: `pipeline/` (plan → cell → store → task, the sweep and its collect on top),
`metrics/` (feature extractors, Fréchet statistics) and `report/` (cell records, the paper's tables, one pivot, one
markdown renderer, tables and plots). Nothing is imported here, so importing one part does not load the others'
libraries (torch-fidelity, scikit-learn, Lightning, matplotlib)."""
