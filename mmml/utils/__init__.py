"""Low-level helpers that every layer may use (no imports of other mmml modules)."""
