"""hotpose service: the FastAPI app, its settings and the `hotpose` command line."""

__version__ = "0.1.0"
