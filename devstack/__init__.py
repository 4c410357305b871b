"""The embedded local stack (AWS emulator + deployed template + runtime) and CLI."""
