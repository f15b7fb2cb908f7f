"""Pipeline stages: each consumes one topic as its own consumer group (see pipeline.topology)."""
