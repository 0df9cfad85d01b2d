"""The node daemon's wire protocol: frames, answers and the client's time limits.

Import-free on purpose: the launcher (the client end, run on every CNI call) imports it, as do
the daemon's reader and writer (`wire`), its supervisor and the status client. A native client
must speak exactly this: the native forwarder (`forwarder.c`) is
compiled with these values (`pycni.install` writes them into its header).

Wire format (integers are 4-byte big-endian):
  request   MAGIC kind(1) len(header) len(stdin) header stdin, with SCM_RIGHTS carrying our
            network and mount namespace fds; kind C = CNI request, S = status;
            header = plugin type NUL KEY=VALUE NUL ... (the forwarded environment), and flags:
            entries without `=` (a daemon that does not know one ignores it)
  answers   Q              queued: every worker is busy (the daemon is alive, worth waiting for)
            R timeout_ms   taken by a worker, waiting for GO
            X len reason   refused: the caller runs the request itself
            D code len out done: exit code and stdout, relayed unchanged
            U code len out len ifname
                           done but for deleting the pod's link `ifname` in the netns the
                           caller sent, which the caller does before it exits with code and out
                           (only to a caller whose header carries the flag CALLER_UNLINKS)
            K status       the worker died mid-request (status < 0: by that signal): we end the same way
  client    G              go ahead (only after R)
"""

MAGIC = b"PCNI"
KIND_CNI = b"C"
KIND_STATUS = b"S"
READY = b"R"
QUEUED = b"Q"
REFUSED = b"X"
DONE = b"D"
DONE_BUT_UNLINK = b"U"
DIED = b"K"
GO = b"G"

#: A header flag: the caller can delete the pod's link itself (it answers DONE_BUT_UNLINK).
CALLER_UNLINKS = b"+caller-unlinks"
#: The longest interface name (IFNAMSIZ less its NUL).
MAX_IFNAME = 15

#: Limits on what a caller may send: configs are kilobytes, a multus conflist rarely more.
MAX_HEADER = 1 << 20
MAX_STDIN = 16 << 20
#: The most stdout a native forwarder accepts in a DONE answer (a CNI result is kilobytes).
MAX_OUTPUT = 16 << 20

#: Connecting to a Unix socket is immediate unless its backlog is full; then do not wait.
CONNECT_TIMEOUT = 0.1
#: How long the daemon may take to answer at all (READY, QUEUED or a refusal) before we run
#: the request ourselves: a daemon that is alive answers in microseconds.
DEFAULT_ACCEPT_TIMEOUT = 2.0
#: How long a request the daemon has queued (all workers busy) may wait for a worker.
QUEUE_TIMEOUT = 30.0
#: Added to the daemon's own per-request timeout (sent with READY) before we stop waiting.
ANSWER_GRACE = 10.0
#: Prefixes of the variables a request carries; everything else stays with the caller.
FORWARDED = (b"CNI_", b"PYCNI_")
#: Commands the spec makes idempotent or read-only: safe to replay if the daemon dies mid-way.
REPLAYABLE = (b"DEL", b"CHECK", b"STATUS", b"GC", b"VERSION")

#: The error objects the clients print themselves. 11 is `TryAgainLater.code`, written out because
#: this module imports nothing (the launcher's rule); a test holds the two equal.
REQUIRED_UNAVAILABLE = b'{"code":11,"msg":"the pycni daemon is required but did not take the request"}\n'
UNLINK_FAILED = (
    b'{"code":999,"msg":"failed to delete the pod\'s interface",'
    b'"details":"the node daemon ran the DEL and left the deletion of the interface to its caller, '
    b'which could not delete it; DEL again"}\n'
)
LOST_ADD = (
    b'{"code":11,"msg":"the pycni daemon took the request but did not answer",'
    b'"details":"the request may have partly run; delete and retry"}\n'
)
