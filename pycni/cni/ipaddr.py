"""The IP address types shared by every module that handles addresses: plain stdlib unions.

One home, so a function taking "an address of either family" reads the same everywhere.
Standard library only: config models and the VERSION path may import it. The pydantic result
models annotate these with their own parsers (`pycni.cni.types.common`).
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network

IPAddress = IPv4Address | IPv6Address
IPInterface = IPv4Interface | IPv6Interface
IPNetwork = IPv4Network | IPv6Network
