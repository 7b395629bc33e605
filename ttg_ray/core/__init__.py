"""The pure core: parameter spaces, chunk plans, running one chunk, values and their
wire format, results, the index ledger and the summary. No I/O beyond logging, no client
library, no threads. Imports only ``ttg_ray.errors`` and itself; every other layer builds
on it, and its unit tests need no service."""
