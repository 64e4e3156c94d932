"""The S3-compatible surface: SigV4 authentication, S3 XML errors and the S3 operations.

Served at the root path of every gateway (path-style) and, with ``s3_domain``
set, at ``<bucket>.<s3_domain>`` (virtual-hosted style); see ``routing.py``.
"""
