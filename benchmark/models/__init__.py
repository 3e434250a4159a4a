"""Encoder presets and loading; the CLAP model."""
