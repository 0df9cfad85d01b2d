"""The CNI runtime core: spec models, the plugin runner, netns, delegation and the CLI.

Modules here are imported by every plugin executable, so the ones on the VERSION path
(`errors`, `version`, `runtime`, `plugin`, `registry`, `skel`) use the standard library only.
"""
