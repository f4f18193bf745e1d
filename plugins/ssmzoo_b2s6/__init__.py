"""The b2s6 family of ssmzoo (registered through the `ssmzoo` entry-point group)."""
