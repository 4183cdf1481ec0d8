"""Wiring of the stages: the demo now, `smci run` and refresh as they land."""
