"""The GPU path in one command: ``python -m experiments.gpu_check --out DIR``.

See __main__.py for what it runs, its time budget and how to run it on a
lent GPU machine; ingest.py brings its results into results/gpu.
"""
