"""Runnable lecture programs that ship with the package (``python -m fastconv.examples.malaria``);
the other lecture examples are scripts in the project's examples/ folder."""
