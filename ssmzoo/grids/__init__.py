"""Built-in grid files, shipped as package data: ``ssmzoo grid run NAME`` runs ``NAME.toml``."""
