"""Model assets: release conversion, instruction encoding, tiny test packages."""
