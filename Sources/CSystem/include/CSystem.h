// Thin wrappers over Linux calls that Swift's Glibc module does not export, or exports awkwardly
// (epoll_event is a packed struct on x86_64). Each returns what the syscall returns; errno is left set.
#ifndef IDLEGATE_CSYSTEM_H
#define IDLEGATE_CSYSTEM_H

#include <stdint.h>
#include <signal.h>
#include <sys/socket.h>

/// One readiness report, unpacked: the fd-sized token registered with it and the EPOLL* bits.
typedef struct {
    uint64_t token;
    uint32_t events;
} cs_event;

enum {
    CS_EPOLLIN = 0x001,
    CS_EPOLLOUT = 0x004,
    CS_EPOLLERR = 0x008,
    CS_EPOLLHUP = 0x010,
    CS_EPOLLRDHUP = 0x2000,
    CS_EPOLLEXCLUSIVE = (int)(1u << 28),
    CS_EPOLLET = (int)(1u << 31),
};

int cs_epoll_create(void);
int cs_epoll_add(int epfd, int fd, uint32_t events, uint64_t token);
int cs_epoll_mod(int epfd, int fd, uint32_t events, uint64_t token);
int cs_epoll_del(int epfd, int fd);
/// Waits for at most `max` events and copies them, unpacked, into `out`.
int cs_epoll_wait(int epfd, cs_event *out, int max, int timeout_ms);

/// accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC (accept4 needs _GNU_SOURCE, which Swift's Glibc lacks).
int cs_accept(int fd, struct sockaddr *addr, unsigned int *len);

int cs_eventfd(void);
int cs_eventfd_signal(int fd);
int cs_eventfd_drain(int fd);

/// Blocks SIGTERM, SIGINT, SIGHUP, SIGUSR1 in the calling thread (threads created later inherit the
/// mask), so that only the main thread's `cs_wait_signal` sees them; ignores SIGPIPE process-wide.
int cs_block_signals(void);
/// Waits for one of the signals blocked above and returns its number (-1 on error).
int cs_wait_signal(void);

#endif
