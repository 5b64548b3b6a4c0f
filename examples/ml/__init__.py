"""ML: a parameter grid of random forests, cross-validated on workers, one task per point."""
