"""Benchmarks that measure Vigil side by side with its peers. Run them as `vigil bench <name>`."""
