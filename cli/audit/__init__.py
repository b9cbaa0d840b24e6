"""Auditors' tools: replay a chain from genesis, prove an account entry like a light client, and
report what the economy did. Nothing here trusts the node that serves the data; see specs/audit.md."""
