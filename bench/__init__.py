"""Benchmark scripts of OS-KDFT2: one measured thing per file, each printing a table (`python bench/<name>.py`)."""
