/*
 * The native forwarder: an installed CNI executable that hands its request to the pycni
 * node daemon, and execs the in-process Python fallback whenever the daemon does not take it.
 *
 * It is the C twin of pycni/daemon/launcher.py and follows the same rules (docs/daemon.md):
 * the wire format is pycni/daemon/protocol.py's; the daemon may run a request only after our
 * GO, which we send only while we have not given up, so nothing runs twice; after GO an ADD is
 * never run here (a lost one is answered "try again later"), while DEL, CHECK, STATUS, GC and
 * VERSION are replayed in-process. Stdin already read is replayed to the fallback through a
 * memfd (a pipe where memfd is missing).
 *
 * A DEL's answer may leave one thing to us: deleting the pod's link in the netns we sent, the
 * kernel's ~20 ms wait that would otherwise hold a daemon worker (docs/daemon.md). We delete it
 * before we exit with the answer; if we cannot, the DEL is replayed in-process (it is idempotent).
 *
 * `pycni install` compiles it once per plugin type with a generated header (forwarder.h) that
 * holds the protocol's constants, the type and the fallback's path. Every read from the socket
 * is bounded by the protocol's limits; no buffer grows past them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "forwarder.h"

/* Found by `pycni install` when it checks that a file is its own before replacing it. */
__attribute__((used)) static const char marker[] = PYCNI_MARKER;

#define PIPE_MAX (1 << 20) /* the default /proc/sys/fs/pipe-max-size */

struct buf {
    char *data;
    size_t len, cap, limit;
};

static struct buf in; /* stdin, once read: replayed to the fallback */
static int stdin_read;
static int own_net = -1, pod_net = -1; /* kept from the hand-over for a link left to us */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A deadline `seconds` from now; -1 (none) for an infinite wait. */
static int64_t deadline_after(double seconds)
{
    if (isinf(seconds))
        return -1;
    return now_ms() + (int64_t)(seconds * 1000.0);
}

static int wait_for(int fd, short events, int64_t deadline)
{
    for (;;) {
        int timeout = -1;
        if (deadline >= 0) {
            int64_t left = deadline - now_ms();
            if (left <= 0)
                return -1;
            timeout = left > INT32_MAX ? INT32_MAX : (int)left;
        }
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, timeout);
        if (n > 0)
            return 0;
        if (n == 0 && deadline >= 0 && now_ms() >= deadline)
            return -1;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

static int append(struct buf *b, const void *data, size_t n)
{
    if (n > b->limit - b->len)
        return -1;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        if (cap > b->limit)
            cap = b->limit;
        char *grown = realloc(b->data, cap);
        if (!grown)
            return -1;
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    return 0;
}

/* All of stdin up to the daemon's limit; 1 if there is more than that (the rest left unread). */
static int read_stdin(void)
{
    char chunk[65536];
    in.limit = PYCNI_MAX_STDIN + 1u; /* one byte past the limit tells that it was exceeded */
    stdin_read = 1;
    while (in.len <= PYCNI_MAX_STDIN) {
        size_t room = in.limit - in.len;
        ssize_t n = read(0, chunk, room < sizeof chunk ? room : sizeof chunk);
        if (n == 0)
            return 0;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EBADF)
                return 0; /* no stdin at all: the same as an empty one */
            return -1;
        }
        if (append(&in, chunk, (size_t)n) < 0)
            return -1;
    }
    return 1;
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static void finish(int code, const char *out, size_t len)
{
    write_all(1, out, len);
    _exit(code);
}

/* Give the fallback what we read of stdin, followed by whatever we left unread. */
static int replay_stdin(int more)
{
    int fd = memfd_create("pycni-stdin", 0);
    if (fd >= 0) {
        if (write_all(fd, in.data, in.len) < 0)
            goto fail;
        char chunk[65536];
        ssize_t n;
        while (more && (n = read(0, chunk, sizeof chunk)) != 0) {
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 || write_all(fd, chunk, (size_t)n) < 0)
                goto fail;
        }
        if (lseek(fd, 0, SEEK_SET) != 0)
            goto fail;
    } else {
        /* No memfd (an old kernel): a pipe, if it can hold all of stdin (nobody reads it yet). */
        int p[2];
        if (more || in.len > PIPE_MAX || pipe(p) < 0)
            return -1;
        if ((in.len > 65536 && fcntl(p[1], F_SETPIPE_SZ, (int)in.len) < (int)in.len)
            || write_all(p[1], in.data, in.len) < 0) {
            close(p[0]);
            close(p[1]);
            return -1;
        }
        close(p[1]);
        fd = p[0];
    }
    if (fd != 0) {
        if (dup2(fd, 0) < 0)
            goto fail;
        close(fd);
    }
    return 0;
fail:
    close(fd);
    return -1;
}

/* Run the plugin in-process: exec the Python fallback, stdin replayed if we read it. A
 * daemon-only build (no fallback: the interpreter lives in the daemon's pod) says so instead. */
static void run_here(char **argv, int more_stdin)
{
    static const char msg[] = PYCNI_FALLBACK_ERROR;
    static const char fallback[] = PYCNI_FALLBACK;
    if (fallback[0] != '\0' && (!stdin_read || replay_stdin(more_stdin) == 0)) {
        char *fallback_argv[] = {argv[0] ? argv[0] : (char *)PYCNI_FALLBACK, NULL};
        execv(PYCNI_FALLBACK, fallback_argv);
    }
    finish(1, msg, sizeof msg - 1);
}

static void die_like(int32_t status)
{
    if (status < 0) {
        int sig = -status;
        if (sig != SIGKILL && sig != SIGSTOP) {
            sigset_t set;
            signal(sig, SIG_DFL);
            sigemptyset(&set);
            sigaddset(&set, sig);
            sigprocmask(SIG_UNBLOCK, &set, NULL);
        }
        kill(getpid(), sig);
    }
    _exit(status > 0 ? status : 1);
}

static int connect_daemon(const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if (len >= sizeof addr.sun_path)
        return -1;
    memcpy(addr.sun_path, path, len + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0)
        return fd;
    if (errno == EINPROGRESS || errno == EAGAIN) {
        int err = 0;
        socklen_t n = sizeof err;
        if (wait_for(fd, POLLOUT, deadline_after(PYCNI_CONNECT_TIMEOUT)) == 0
            && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &n) == 0 && err == 0)
            return fd;
    }
    close(fd);
    return -1;
}

static int recv_exact(int fd, void *dst, size_t n, int64_t deadline)
{
    char *p = dst;
    while (n) {
        ssize_t got = recv(fd, p, n, 0);
        if (got > 0) {
            p += got;
            n -= (size_t)got;
        } else if (got == 0) {
            return -1;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (wait_for(fd, POLLIN, deadline) < 0)
                return -1;
        } else if (errno != EINTR) {
            return -1;
        }
    }
    return 0;
}

static int recv_u32(int fd, uint32_t *value, int64_t deadline)
{
    unsigned char b[4];
    if (recv_exact(fd, b, 4, deadline) < 0)
        return -1;
    *value = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    return 0;
}

static void put_u32(unsigned char *dst, uint32_t value)
{
    dst[0] = value >> 24;
    dst[1] = value >> 16;
    dst[2] = value >> 8;
    dst[3] = value;
}

/* Send every byte of `iov`; the namespace fds (at most 3) ride on the first sendmsg. */
static int send_frame(int fd, struct iovec *iov, int iovcnt, const int *fds, int nfds, int64_t deadline)
{
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(3 * sizeof(int))];
    } control;
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)iovcnt};
    if (nfds) {
        memset(&control, 0, sizeof control);
        msg.msg_control = control.space;
        msg.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
    }
    while (msg.msg_iovlen) {
        ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if ((errno == EAGAIN || errno == EWOULDBLOCK) && wait_for(fd, POLLOUT, deadline) == 0)
                continue;
            return -1;
        }
        msg.msg_control = NULL;
        msg.msg_controllen = 0;
        while (msg.msg_iovlen && (size_t)n >= msg.msg_iov->iov_len) {
            n -= (ssize_t)msg.msg_iov->iov_len;
            msg.msg_iov++;
            msg.msg_iovlen--;
        }
        if (msg.msg_iovlen) {
            msg.msg_iov->iov_base = (char *)msg.msg_iov->iov_base + n;
            msg.msg_iov->iov_len -= (size_t)n;
        }
    }
    return 0;
}

static int forwarded(const char *entry)
{
    static const char *const prefixes[] = {PYCNI_FORWARDED, "PATH="};
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++)
        if (strncmp(entry, prefixes[i], strlen(prefixes[i])) == 0)
            return 1;
    return 0;
}

/* type NUL KEY=VALUE NUL ...: the variables a request carries, as the Python launcher sends them. */
static int build_header(struct buf *h, char **envp)
{
    h->limit = PYCNI_MAX_HEADER;
    if (append(h, PYCNI_TYPE, sizeof PYCNI_TYPE - 1) < 0
        || append(h, "", 1) < 0 || append(h, PYCNI_CALLER_UNLINKS, sizeof PYCNI_CALLER_UNLINKS - 1) < 0)
        return -1;
    for (char **e = envp; *e; e++) {
        if (!forwarded(*e) || !strchr(*e, '='))
            continue;
        if (append(h, "", 1) < 0 || append(h, *e, strlen(*e)) < 0)
            return -1;
    }
    return 0;
}

/*
 * CNI_NETNS opened here, in our mount namespace, so the daemon never resolves the path: first
 * with O_PATH (no side effect on any kind of file), then, for a regular file (a netns file is
 * one), for reading through /proc; a FIFO or device is never opened. -1 when there is no path
 * or it cannot be opened: the daemon then looks the path up as we see it.
 */
static int pod_netns(void)
{
    const char *path = getenv("CNI_NETNS");
    if (!path || !*path)
        return -1;
    int fd = open(path, O_PATH | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        return fd;
    char proc[32] = "/proc/self/fd/", digits[12];
    size_t n = 0;
    for (unsigned v = (unsigned)fd; n == 0 || v; v /= 10)
        digits[n++] = (char)('0' + v % 10);
    for (size_t i = strlen(proc); n; i++)
        proc[i] = digits[--n];
    int readable = open(proc, O_RDONLY | O_CLOEXEC);
    if (readable < 0)
        return fd;
    close(fd);
    return readable;
}

/* Our network and mount namespaces, then the pod's netns when we could open it. */
static int own_namespaces(int fds[3])
{
    fds[0] = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    fds[1] = fds[0] < 0 ? -1 : open("/proc/thread-self/ns/mnt", O_RDONLY | O_CLOEXEC);
    if (fds[1] < 0) {
        if (fds[0] >= 0)
            close(fds[0]);
        return 0;
    }
    fds[2] = pod_netns();
    return fds[2] < 0 ? 2 : 3;
}

static double accept_timeout(void)
{
    const char *raw = getenv(PYCNI_ENV_ACCEPT_TIMEOUT);
    if (!raw || !*raw)
        return PYCNI_DEFAULT_ACCEPT_TIMEOUT;
    char *end;
    double value = strtod(raw, &end);
    int converted = end != raw;
    while (*end == ' ' || *end == '\t' || *end == '\n')
        end++;
    if (!converted || *end || isnan(value) || value < 0)
        return PYCNI_DEFAULT_ACCEPT_TIMEOUT;
    return value;
}

/* Until GO: any failure means the daemon did not take the request. */
static int hand_over(int fd, char **envp, int *more_stdin, uint32_t *timeout_ms)
{
    struct buf header = {0};
    int nfds, fds[3], ok = -1;
    int stdin_state = read_stdin();
    *more_stdin = stdin_state == 1;
    if (stdin_state != 0 || build_header(&header, envp) < 0)
        return -1;
    unsigned char prefix[sizeof PYCNI_MAGIC - 1 + 9];
    memcpy(prefix, PYCNI_MAGIC, sizeof PYCNI_MAGIC - 1);
    prefix[sizeof PYCNI_MAGIC - 1] = PYCNI_KIND_CNI;
    put_u32(prefix + sizeof PYCNI_MAGIC, (uint32_t)header.len);
    put_u32(prefix + sizeof PYCNI_MAGIC + 4, (uint32_t)in.len);
    struct iovec iov[] = {{prefix, sizeof prefix}, {header.data, header.len}, {in.data, in.len}};
    nfds = own_namespaces(fds);
    int64_t deadline = deadline_after(accept_timeout());
    char kind = 0;
    if (send_frame(fd, iov, 3, fds, nfds, deadline) == 0 && recv_exact(fd, &kind, 1, deadline) == 0) {
        if (kind == PYCNI_QUEUED) {
            deadline = deadline_after(PYCNI_QUEUE_TIMEOUT); /* every worker is busy: worth waiting */
            if (recv_exact(fd, &kind, 1, deadline) < 0)
                kind = 0;
        }
        if (kind == PYCNI_READY && recv_u32(fd, timeout_ms, deadline) == 0) {
            char go = PYCNI_GO;
            ok = send_frame(fd, &(struct iovec){&go, 1}, 1, NULL, 0, deadline);
        }
    }
    int keep = ok == 0 && nfds == 3; /* our netns and the pod's: for a link the answer leaves to us */
    if (keep) {
        own_net = fds[0];
        pod_net = fds[2];
    }
    for (int i = 0; i < nfds; i++)
        if (!keep || i == 1)
            close(fds[i]);
    free(header.data);
    return ok;
}

/* RTM_DELLINK of `ifname` in our current netns: 0 when deleted or already gone, else an errno. */
static int delete_link(const char *ifname)
{
    struct {
        struct nlmsghdr h;
        struct ifinfomsg i;
        char attrs[RTA_SPACE(PYCNI_MAX_IFNAME + 1)];
    } req;
    union {
        struct nlmsghdr h;
        char raw[8192];
    } ack;
    size_t len = strlen(ifname) + 1;
    memset(&req, 0, sizeof req);
    struct rtattr *name = (struct rtattr *)req.attrs;
    name->rta_type = IFLA_IFNAME;
    name->rta_len = (unsigned short)RTA_LENGTH(len);
    memcpy(RTA_DATA(name), ifname, len);
    req.h.nlmsg_len = NLMSG_LENGTH(sizeof req.i) + RTA_SPACE(len);
    req.h.nlmsg_type = RTM_DELLINK;
    req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    req.h.nlmsg_seq = 1;
    req.i.ifi_family = AF_UNSPEC;
    int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (s < 0)
        return errno;
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    int err = 0;
    if (sendto(s, &req, req.h.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0)
        err = errno;
    while (!err) {
        ssize_t n = recv(s, &ack, sizeof ack, 0);
        if (n < 0) {
            if (errno != EINTR)
                err = errno;
            continue;
        }
        if (!NLMSG_OK(&ack.h, (size_t)n) || ack.h.nlmsg_seq != 1 || ack.h.nlmsg_type != NLMSG_ERROR)
            continue; /* not the answer to our request */
        if (ack.h.nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr)))
            err = EPROTO;
        else
            err = -((struct nlmsgerr *)NLMSG_DATA(&ack.h))->error;
        break;
    }
    close(s);
    return err == ENODEV || err == ENOENT ? 0 : err;
}

/* Delete `ifname` in the pod's netns and come back to ours: 0, 1 (not deleted, back home), or
 * -1 (not back home: nothing more may run here). */
static int unlink_in_pod(const char *ifname)
{
    if (pod_net < 0 || own_net < 0 || setns(pod_net, CLONE_NEWNET) < 0)
        return 1;
    int err = delete_link(ifname);
    if (setns(own_net, CLONE_NEWNET) < 0)
        return -1;
    return err ? 1 : 0;
}

/* The rest of a DONE_BUT_UNLINK answer: the link's name, then its deletion. Returns only when
 * the link could not be deleted and the daemon's answer was a success (the caller replays). */
static int finish_unlinking(int fd, int64_t deadline, uint32_t code, const char *out, uint32_t len)
{
    uint32_t name_len;
    char ifname[PYCNI_MAX_IFNAME + 1];
    if (recv_u32(fd, &name_len, deadline) < 0 || name_len == 0 || name_len > PYCNI_MAX_IFNAME
        || recv_exact(fd, ifname, name_len, deadline) < 0)
        return 0;
    ifname[name_len] = '\0';
    if (strlen(ifname) != name_len)
        return 0;
    int unlinked = unlink_in_pod(ifname);
    if (unlinked < 0)
        finish(1, PYCNI_UNLINK_FAILED, sizeof PYCNI_UNLINK_FAILED - 1);
    if (unlinked == 0 || code != 0)
        finish((int)code, out, len); /* a failed DEL is reported as it is, and DELeted again */
    return 1;
}

/* After GO: relay the answer and exit, or mirror the worker's death. Returns only when the
   answer was lost (the connection closed, timed out, or carried something else): 0, or when a
   link left to us could not be deleted: 1. */
static int relay(int fd, uint32_t timeout_ms)
{
    int64_t deadline = deadline_after(timeout_ms / 1000.0 + PYCNI_ANSWER_GRACE);
    char kind;
    uint32_t code, len;
    if (recv_exact(fd, &kind, 1, deadline) < 0)
        return 0;
    if (kind == PYCNI_DIED) {
        if (recv_u32(fd, &code, deadline) < 0)
            return 0;
        die_like((int32_t)code);
    }
    if ((kind != PYCNI_DONE && kind != PYCNI_DONE_BUT_UNLINK) || recv_u32(fd, &code, deadline) < 0
        || recv_u32(fd, &len, deadline) < 0)
        return 0;
    if (len > PYCNI_MAX_OUTPUT)
        return 0;
    char *out = malloc(len ? len : 1);
    if (!out || recv_exact(fd, out, len, deadline) < 0)
        return 0;
    if (kind == PYCNI_DONE_BUT_UNLINK)
        return finish_unlinking(fd, deadline, code, out, len);
    finish((int)code, out, len);
    return 0;
}

static int replayable(const char *command)
{
    static const char *const commands[] = {PYCNI_REPLAYABLE};
    for (size_t i = 0; command && i < sizeof commands / sizeof *commands; i++)
        if (strcmp(command, commands[i]) == 0)
            return 1;
    return 0;
}

int main(int argc, char **argv, char **envp)
{
    (void)argc;
    const char *mode = getenv(PYCNI_ENV_MODE);
    if (!mode || !*mode)
        mode = PYCNI_DEFAULT_MODE;
    int required = strcmp(mode, "required") == 0;
    if (strcmp(mode, "off") == 0)
        run_here(argv, 0);
    const char *path = getenv(PYCNI_ENV_SOCKET);
    if (!path || !*path)
        path = PYCNI_DEFAULT_SOCKET;
    int fd = connect_daemon(path);
    int more_stdin = 0;
    uint32_t timeout_ms = 0;
    if (fd >= 0 && hand_over(fd, envp, &more_stdin, &timeout_ms) == 0) {
        /* committed: from here on the daemon may be running the request */
        int unlink_failed = relay(fd, timeout_ms); /* returns only when the answer was lost */
        if (unlink_failed && (required || PYCNI_FALLBACK[0] == '\0'))
            finish(1, PYCNI_UNLINK_FAILED, sizeof PYCNI_UNLINK_FAILED - 1);
        if (required || !replayable(getenv("CNI_COMMAND")))
            finish(1, PYCNI_LOST_ADD, sizeof PYCNI_LOST_ADD - 1);
    } else if (required) {
        finish(1, PYCNI_REQUIRED_ERROR, sizeof PYCNI_REQUIRED_ERROR - 1);
    }
    if (fd >= 0)
        close(fd);
    run_here(argv, more_stdin);
    return 1;
}
