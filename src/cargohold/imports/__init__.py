"""Adapters of background imports: the network side of ``service/imports.py``'s ports."""
