"""cargohold: a distributed file store that keeps every file as erasure-coded shares."""

__version__ = "0.1.0"
