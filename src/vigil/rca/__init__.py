"""Root-cause analysis of incidents: gather evidence around the start, rank candidate causes
deterministically (``vigil.analytics.rca_ranking``), explain with a model when one is configured
(citations checked), and remember resolved incidents to show similar past ones.

- ``evidence``: plain records → ``Evidence`` (pure)
- ``gather``: the records of one incident, from the stores
- ``explain``: the rules explanation, and the model's (with citation checking)
- ``similar``: resolved incidents in the vector store; "similar past incidents, and what fixed them"
- ``service``: ``RCAService.analyze(incident_id)`` end to end, stored in ``rca_results``
"""
