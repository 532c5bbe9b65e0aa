"""Benchmarks of stt_frames, run with ``make bench`` (``python -m bench``); results go to bench/results.md and .json.

Each benchmark module exposes ``run(quick: bool) -> list[dict]``: one row per (scenario, client) with
``scenario``, ``client``, ``seconds``, ``rps``, a relative measure such as ``pct_of_ideal``, and ``notes``.
Add a module by listing it in ``bench.__main__.MODULES``.
"""
