"""CORTX S3 and S3-compatible object stores as a Label Studio cloud storage type."""

__version__ = "0.1.0"
