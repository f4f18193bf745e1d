"""Registers the built-in tasks, as a plugin like any other."""
