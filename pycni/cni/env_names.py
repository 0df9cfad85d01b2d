"""The names of the `PYCNI_*` environment variables and their defaults, and nothing else.

Kept free of imports so the installed launcher, which may not import anything, reads the
daemon's variables by the same names as `Settings` does. Every other module gets these values
from the `Settings` object of its call, never from the environment.
"""

STATE_DIR = "PYCNI_STATE_DIR"
RUN_DIR = "PYCNI_RUN_DIR"
SYSFS_ROOT = "PYCNI_SYSFS_ROOT"
LOG_FILE = "PYCNI_LOG_FILE"
LOG_LEVEL = "PYCNI_LOG_LEVEL"
DAEMON_MODE = "PYCNI_DAEMON"
DAEMON_SOCKET = "PYCNI_DAEMON_SOCKET"
DAEMON_ACCEPT_TIMEOUT = "PYCNI_DAEMON_ACCEPT_TIMEOUT"
#: sriov: keep PF-side VF settings in this JSON file instead of programming the PF over netlink.
SRIOV_VF_STATE = "PYCNI_SRIOV_VF_STATE"
#: sriov: where sriov-cni's per-attachment cache and PCI allocation markers live (default: the
#: `sriov` directory beside the state dir, /var/lib/cni/sriov on a node, as sriov-cni has it).
SRIOV_CNI_DIR = "PYCNI_SRIOV_CNI_DIR"
#: The attachment locks a request holds, for our own executables it execs: they do not wait on them.
ATTACHMENT_LOCKS = "PYCNI_ATTACHMENT_LOCKS"
#: Test hook: host-local SIGKILLs itself at this named write step (crash-safety tests).
HOST_LOCAL_CRASH_AT = "PYCNI_HOST_LOCAL_CRASH_AT"

DEFAULT_STATE_DIR = "/var/lib/cni/pycni"
DEFAULT_RUN_DIR = "/run/pycni"
DEFAULT_SYSFS_ROOT = "/sys"
DEFAULT_LOG_LEVEL = "WARNING"
DEFAULT_DAEMON_SOCKET = "/run/pycni/daemon.sock"
#: "auto" (use the daemon when it answers), "off" (never), "required" (never fall back).
DEFAULT_DAEMON_MODE = "auto"
