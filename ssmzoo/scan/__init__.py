"""The scans every unit shares: ``selective_scan`` and ``ssd_scan``, and their backends."""
