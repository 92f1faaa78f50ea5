"""What the tests share, in one place (test modules import from here, never from each other).

- ``paths``: the repository and the tiny trained CLIP's folder.
- ``settings``: the per-run model cache and ``make_settings`` (the tiny model, CPU, no .env).
- ``shapes``: the coloured-shape images the tiny CLIP was trained on (also used by
  ``scripts/train_tiny_clip.py`` and ``scripts/check_model_dir.py``).
- ``onnx_export``: exporting a ``clip.model.CLIP`` to Roboflow's two-file ONNX layout (also
  used by the model builders in ``scripts/``).
- ``inference_server``: real Roboflow Inference Servers in subprocesses (``python -m
  scripts.inference_server`` serves one by hand).
- ``badimages``, ``decode_hooks``: hostile files, and decode tasks that crash or hog on demand.
- ``postgres``, ``milvus_server``: throw-away PostgreSQL and Milvus servers.
- ``live_bot``, ``outcomes``, ``metrics``: the production bot run against the Discord stand-in
  (``tests/fakediscord``), what a user got back, and what ``/metrics`` says.
- ``cli``, ``labels``: ``python -m bot`` run as a user would, and labels that stress prompt fitting.
"""
