"""Local stand-ins for external services the tests cannot run (LLM servers, notification endpoints)."""
