"""Registers the pure-PyTorch reference scan backend, as a plugin like any other."""
