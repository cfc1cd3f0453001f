"""Frames and graph specs behind the Latent states page."""
