"""From a pod and the config to the list of attachments ADD will make: everything decided up front.

Order (NPWG §6.2, as the reference): the cluster network (or the pod's
`v1.multus-cni.io/default-network`) on CNI_IFNAME, then `defaultNetworks` (not for pods in
`systemNamespaces`), then the pod's selection. An attachment without a requested interface is
`net<N>`, N its position in that whole list. Each NAD is checked against namespace isolation,
each runtime request against its plugins' capabilities, each `default-route` against ECMP, and
each device resource is given the next of the pod's devices (`allotment`); nothing runs until
all of it holds.
"""

from __future__ import annotations

import copy
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pycni.cni.errors import InvalidConfig
from pycni.hw import devinfo
from pycni.k8s import objects
from pycni.meta_multus import networks, pods, selection
from pycni.meta_multus.allotment import Allotted, DeviceAllotment
from pycni.meta_multus.plan import PlannedAttachment

if TYPE_CHECKING:
    from pycni.cni.runtime import RuntimeArgs
    from pycni.k8s.objects import Pod, PodSource
    from pycni.meta_multus.config import MultusConf
    from pycni.meta_multus.networks import Network
    from pycni.meta_multus.selection import NetworkSelection


def info_dir(conf: MultusConf) -> Path:
    """Where ADD puts the device-info copies it hands delegates (and the only place DEL deletes them)."""
    return conf.device_info_dir / "cni"


@dataclass
class Resolver:
    """The attachments of one pod: its networks, looked up by reference or NAD and checked against
    the config's rules, then each turned into a planned attachment (interface name, runtime
    requests, device, default-route claim).

    `source` is where Pods and NADs are read (None: no API, inline delegates only); `pod` is the
    pod (None when unknown, on DEL or STATUS); `devices` hands out the pod's devices.
    """

    conf: MultusConf
    rt: RuntimeArgs
    source: PodSource | None
    pod: Pod | None
    devices: DeviceAllotment

    @property
    def pod_namespace(self) -> str:
        return self.pod.namespace if self.pod else pods.PodArgs.from_rt(self.rt).namespace

    # -- the networks --------------------------------------------------------------------------
    def cluster_network(self) -> Network:
        """The pod's default-network annotation, else clusterNetwork, else delegates[0]."""
        wanted = self.pod.annotation(objects.DEFAULT_NETWORK_ANNOTATION) if self.pod else ""
        if wanted:
            chosen = selection.parse(wanted, self.conf.multus_namespace, objects.DEFAULT_NETWORK_ANNOTATION)
            if len(chosen) != 1:
                raise InvalidConfig(f"{objects.DEFAULT_NETWORK_ANNOTATION} must name exactly one network")
            self._isolate(chosen[0], extra=(self.conf.multus_namespace,))
            return self._nad_network(chosen[0])
        if self.conf.cluster_network:
            return self._by_ref(self.conf.cluster_network)
        return self._inline(0)

    def default_networks(self) -> list[Network]:
        """Every pod's extra networks, unless its namespace is a system one."""
        if self.pod_namespace in self.conf.system_namespaces:
            return []
        found = [self._by_ref(ref) for ref in self.conf.default_networks]
        if not self.conf.cluster_network:
            found = [self._inline(i) for i in range(1, len(self.conf.delegates))] + found
        return found

    def selections(self) -> list[NetworkSelection]:
        if self.pod is None:
            return []
        chosen = selection.parse(
            self.pod.annotation(objects.NETWORKS_ANNOTATION), self.pod.namespace, objects.NETWORKS_ANNOTATION
        )
        for element in chosen:
            self._isolate(element)
        return chosen

    def _by_ref(self, ref: str) -> Network:
        return networks.resolve(
            ref, self.conf.multus_namespace, self.source, self.conf.conf_dir, self.conf.cni_version
        )

    def _inline(self, index: int) -> Network:
        raw = self.conf.delegates[index]
        name = raw.get("name") or f"{self.conf.name}-{index}"
        listed = networks.as_list(raw, self.conf.cni_version, name, f"delegates[{index}]")
        return networks.Network(str(listed["name"]), listed)

    def _nad_network(self, element: NetworkSelection) -> Network:
        nad = self.source.nad(element.namespace, element.name) if self.source is not None else None
        if nad is None:
            if self.pod is not None and self.source is not None:
                self.source.event(
                    self.pod, "NoNetworkFound", f"cannot find network {element.namespace}/{element.name}"
                )
            raise networks.NetworkNotFound(
                f"NetworkAttachmentDefinition {element.namespace}/{element.name} not found"
                + ("" if self.source is not None else ": no kubeconfig or manifests to read it from")
            )
        return networks.from_nad(nad, self.conf.conf_dir, self.conf.cni_version)

    def _isolate(self, element: NetworkSelection, extra: tuple[str, ...] = ()) -> None:
        """namespaceIsolation: a pod may use NADs of its own namespace and of globalNamespaces."""
        if not self.conf.namespace_isolation or self.pod is None:
            return
        allowed = {self.pod.namespace, *self.conf.global_namespaces, *extra}
        if element.namespace not in allowed:
            raise InvalidConfig(
                f"pod {self.pod.namespace}/{self.pod.name} may not use network "
                f"{element.namespace}/{element.name}: "
                f"namespaceIsolation allows only namespaces {', '.join(sorted(allowed))}"
            )

    # -- the attachments -----------------------------------------------------------------------
    def attachments(self) -> list[PlannedAttachment]:
        planned = [self.attachment(self.cluster_network(), None, 0)]
        for net in self.default_networks():
            planned.append(self.attachment(net, None, len(planned)))
        for element in self.selections():
            planned.append(self.attachment(self._nad_network(element), element, len(planned)))
        _check_ifnames(planned)
        _route_defaults(planned)
        return planned

    def attachment(self, net: Network, element: NetworkSelection | None, index: int) -> PlannedAttachment:
        ifname = self.rt.ifname if index == 0 else (element and element.requested_ifname) or f"net{index}"
        conflist = copy.deepcopy(net.conflist)
        _drop_device_info_paths(conflist)
        capability_args = element.capability_args() if element else {}
        if index == 0:
            capability_args = {**self.conf.runtime_capability_args, **capability_args}
        if element is not None:
            _require_capabilities(net, conflist, element.capability_args())
            if element.cni_args:
                _inject_cni_args(conflist, element.cni_args)
        device, info_file = self._device(net, element, ifname)
        if device is not None:
            _inject_device(conflist, device.device_id, info_file)
        return PlannedAttachment(
            network=net.status_name,
            ifname=ifname,
            default=index == 0,
            conflist=conflist,
            capability_args=capability_args,
            resource_name=net.resource_name,
            device_id=device.device_id if device else "",
            device_info_file=info_file,
            claimed=device.claimed if device else None,
            gateways=list(element.default_route or []) if element else [],
            claims_default_route=element is not None and element.default_route is not None,
        )

    def _device(
        self, net: Network, element: NetworkSelection | None, ifname: str
    ) -> tuple[Allotted | None, str]:
        """(device, device-info path): the next of the pod's devices of the NAD's resource (a
        device-plugin resource or a claim's request), else the selection's own deviceID; (None,
        "") for an attachment without a device."""
        device = None
        if net.resource_name:
            device = self.devices.next(net.resource_name, net.status_name)
        elif element is not None and element.device_id:
            device = Allotted(element.device_id)
        if device is None:
            return None, ""
        namespace, _, name = net.status_name.rpartition("/")
        path = devinfo.cni_path(info_dir(self.conf), namespace, name, self.rt.container_id, ifname)
        return device, str(path)


def _check_ifnames(planned: list[PlannedAttachment]) -> None:
    seen: dict[str, str] = {}
    for att in planned:
        if att.ifname in seen:
            raise InvalidConfig(
                f"interface {att.ifname!r} is requested by both {seen[att.ifname]} and {att.network}: "
                "name the interfaces in the pod's networks annotation apart"
            )
        seen[att.ifname] = att.network


def _require_capabilities(net: Network, conflist: dict[str, Any], requested: dict[str, Any]) -> None:
    """NPWG §4.1.2: a runtime request no plugin of the network declares is an error, not a no-op."""
    declared = {cap for p in conflist["plugins"] for cap, on in (p.get("capabilities") or {}).items() if on}
    missing = sorted(set(requested) - declared)
    if missing:
        wanted = ", ".join(f'"{m}": true' for m in missing)
        raise InvalidConfig(
            f"network {net.status_name} was asked for {', '.join(missing)}, but none of its plugins "
            f'declares that capability (add "capabilities": {{{wanted}}} to the plugin that handles it)'
        )


def _inject_cni_args(conflist: dict[str, Any], cni_args: dict[str, Any]) -> None:
    """The selection's cni-args win over the NAD's `args.cni`, in every plugin (CONVENTIONS.md)."""
    for plugin in conflist["plugins"]:
        args = plugin.setdefault("args", {})
        args["cni"] = {**(args.get("cni") or {}), **cni_args}


def _drop_device_info_paths(conflist: dict[str, Any]) -> None:
    """A network's own `runtimeConfig.CNIDeviceInfoFile` goes: delegates write that path and DEL
    deletes it, so only multus names it (`_inject_device`), always under the device-info dir."""
    for plugin in conflist["plugins"]:
        runtime = plugin.get("runtimeConfig")
        if isinstance(runtime, dict) and "CNIDeviceInfoFile" in runtime:
            plugin["runtimeConfig"] = {k: v for k, v in runtime.items() if k != "CNIDeviceInfoFile"}


def _inject_device(conflist: dict[str, Any], device_id: str, info_file: str) -> None:
    """The device as the reference passes it: `deviceID`, `pciBusID` and `runtimeConfig`, in every plugin."""
    for plugin in conflist["plugins"]:
        plugin["deviceID"] = device_id
        plugin["pciBusID"] = device_id
        runtime = dict(plugin.get("runtimeConfig") or {})
        runtime["deviceID"] = device_id
        runtime["CNIDeviceInfoFile"] = info_file
        plugin["runtimeConfig"] = runtime


def _route_defaults(planned: list[PlannedAttachment]) -> None:
    """One default route per family: the `default-route` attachment takes it, the others lose theirs.

    An empty `default-route` list claims both families with the attachment's own gateways (the
    reference's comment says so; its code removes every default route instead).
    """
    claims: dict[int, int] = {}
    for index, att in enumerate(planned):
        if not att.claims_default_route:
            continue
        versions = [ipaddress.ip_address(g).version for g in att.gateways]
        for family in set(versions) or {4, 6}:
            if versions.count(family) > 1 or family in claims:
                other = planned[claims.get(family, index)].network
                raise InvalidConfig(
                    f"default-route: more than one IPv{family} gateway ({other}, {att.network}): "
                    "multus does not support ECMP for default-route"
                )
            claims[family] = index
    for index, att in enumerate(planned):
        att.filter_families = sorted(f for f, owner in claims.items() if owner != index)
