"""The spec and the plugin toolkit's base: what every plugin and the runtime side build on.

`errors` (one hierarchy, the spec code a class attribute), `version` (which versions we speak,
which verb needs which), `runtime` (`RuntimeArgs`, the `CNI_*` variables validated), `plugin`
(the contract: `PluginRef`, `Context`, `Delegate`), `skel` (the runner, and the rules a type
declares), `config` (the `NetConf` base model and its checks), `types/` (results of every
version, converters between them), `settings` and `env_names` (the `PYCNI_*` variables),
`callerview` (the caller's view of paths and the pod's netns, for requests served away from
it), `strict_json`, `ipaddr`, and what every process needs whatever the kernel: `files`
(atomic writes), `locks`, `rollback`, `logs`, `wakeup`.

Imports nothing of pycni outside this package. Modules on the VERSION path (`errors`,
`version`, `runtime`, `plugin`, `skel`, `strict_json`) use the standard library only: an
executable answers VERSION before pydantic or pyroute2 is imported.
"""
