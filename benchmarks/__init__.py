"""Benchmarks: scripts that measure ttg_ray against the systems a user would otherwise pick."""
