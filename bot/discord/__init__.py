"""The Discord layer: the client, one extension per feature, and reply formatting.

The only package that imports `discord`; it talks to the service and nothing lower.
"""
