"""Metrics: feature extractors (torch-fidelity's Inception, the digits classifier) and Fréchet-distance statistics."""
