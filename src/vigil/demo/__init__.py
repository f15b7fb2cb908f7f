"""The simulated fleet behind `vigil demo` and `vigil up --demo`: about twenty hosts sending
realistic metrics, logs, application errors and alerts through Vigil's real ingestion
endpoints, with scripted incidents (see ``scenarios.TIMELINE``)."""
