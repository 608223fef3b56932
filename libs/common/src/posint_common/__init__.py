"""Shared runtime for every posint service; one implementation of each mechanism."""
