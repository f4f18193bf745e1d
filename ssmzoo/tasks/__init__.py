"""Tasks: synthetic generators and dataset loaders, each with its metric and model head."""
