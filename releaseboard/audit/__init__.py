"""The audit log: every state change writes one event, in the same transaction."""
