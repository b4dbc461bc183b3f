"""The msgreach censorship lab (issue 3): network namespaces, real servers, named scenarios.

Bring it up by hand with `python -m tests.lab up` (as root, from the repository root); see
docs/lab.md. The pytest matrix (marker `lab`) builds it once per session.
"""
