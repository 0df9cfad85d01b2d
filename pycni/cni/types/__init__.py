"""CNI result models and version conversion.

Plugins build and read only the newest model (`Result` and its parts, from `v100`); results
from delegates or `prevResult` come in through `parse_result`, and leave through `render` in the
version the runtime asked for. Older shapes (`v020`, `v040`) and the conversion table
(`convert`) are internal to this package. Imports only pydantic and the standard library.
"""

from pycni.cni.types.codec import parse_result, render
from pycni.cni.types.v100 import DNS, Interface, IPConfig, Result, Route

__all__ = ["DNS", "IPConfig", "Interface", "Result", "Route", "parse_result", "render"]
