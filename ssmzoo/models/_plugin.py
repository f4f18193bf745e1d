"""Registers the built-in model kinds, as a plugin like any other."""
