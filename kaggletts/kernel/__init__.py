"""Code that runs inside the notebooks' kernels, kept in the package so that it is linted,
type-checked and unit-tested like the rest and shared with it (see support.py)."""
