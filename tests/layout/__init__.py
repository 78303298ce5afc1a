"""The layout itself: import direction, the store and parser boundaries, module size, docs."""
