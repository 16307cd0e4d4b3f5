"""Benchmarks: the gate side by side with direct ``kubectl exec`` and an OpenSSH bastion.

``python -m bench.run`` is the one command (docs/performance.md). ``bench/devcluster_throughput.py`` is a
separate script measuring the dev cluster alone.
"""
