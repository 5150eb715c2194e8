"""hotpose-client: the Python SDK for the hotpose service.

A light distribution (httpx, websockets, numpy) that never imports torch.
The client classes arrive with the SDK issue; this package fixes the name,
the version and the dependency boundary.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
