"""Real-time orchestration: server, protocol, sessions, batching, endpointing, persistence."""
