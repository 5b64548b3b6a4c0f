"""Data: map-reduce statistics of a large numeric dataset, chunk by chunk on workers."""
