"""A local Hearth network on loopback for people and for end-to-end tests.

- `genesis_builder`: the devnet genesis (equal-stake validators, city-state nodes, resources,
  housing, demo members).
- `layout`: writes a devnet to disk (homes, genesis, unencrypted demo keyring, devnet.json).
- `manifest`: devnet.json, the one description every command and test reads.
- `processes`: validator processes, RPC polling with deadlines, the partition switch.
- `network`: `Devnet`, the operations (start, kill, restart, partition, heal) over a manifest.
- `commands`: the `hearth devnet` click group, a thin layer over `network`.
"""
