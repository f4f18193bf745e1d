"""Checkpoint interchange with HF transformers and mamba_ssm: one key-map module per source."""
