"""Offload's shared core: settings, errors, logging, queueing and Salesforce access.

The receiver (``services.receiver``) and the workers (``workers``) both build on
this package; nothing here imports Flask views or job code.
"""
