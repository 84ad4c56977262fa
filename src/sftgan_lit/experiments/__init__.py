"""Experiments built on the package: controlled studies with their own drivers and reports."""
