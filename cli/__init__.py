"""The hearth command line: a thin click layer over the JSON-RPC client and local key files."""
