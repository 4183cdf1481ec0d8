"""The `smci` command line."""
