"""The phases a step's wall time is split into (the words of docs/how-it-works.md):
main-process phases, which add up to the step, and the loader-side phases inside
``data``. Their order is the order of a step row's columns and of the hooks' indices."""

PHASES = ("data", "prep", "forward", "loss", "backward", "optimizer", "other")
LOADER_PHASES = ("fetch", "transform", "collate")
DATA, PREP, FORWARD, LOSS, BACKWARD, OPTIMIZER, OTHER = range(7)
FETCH, TRANSFORM, COLLATE = range(3)
