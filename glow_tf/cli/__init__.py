"""Command-line entry points: train, sample and the latent tools."""
