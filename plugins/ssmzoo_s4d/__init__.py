"""The s4d family of ssmzoo (registered through the `ssmzoo` entry-point group)."""
