"""The command-line tools (``run``, ``worker``, ``monitor``): argparse, logging set-up,
progress, and the one mapping from errors to exit codes (``exits``). May import every
layer below; nothing below imports it."""
