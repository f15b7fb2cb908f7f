"""Log intelligence around the template miner: storage, search, clusters, classification,
semantic search, signals and retention. The log stage (``vigil.pipeline.stages.logs``) writes
through :mod:`vigil.logs.store`; the API reads through :mod:`vigil.logs.search`."""
