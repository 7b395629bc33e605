"""The engine: the runner that plans chunks, drives a backend, retries failed parameters,
dedups by index and builds the summary, and the result store it writes. Imports the core,
the backend interface (``ttg_ray.backends.base``) and ``ttg_ray.errors``/``config``; never
a concrete backend or a client library."""
