"""The Discord layer: the client, one extension per feature, the request pipeline they share,
and reply formatting.

The only package that imports `discord`. It reaches the service, image search, the engine
(the client starts and observes it) and storage through the services that the composition
root (`bot.services`) builds; the layers contract in `pyproject.toml` says what may import what.
"""
