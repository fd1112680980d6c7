#define _GNU_SOURCE
#include "CSystem.h"
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <errno.h>
#include <pthread.h>
#include <time.h>

int cs_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

static int ctl(int epfd, int op, int fd, uint32_t events, uint64_t token) {
    struct epoll_event ev;
    ev.events = events;
    ev.data.u64 = token;
    return epoll_ctl(epfd, op, fd, &ev);
}

int cs_epoll_add(int epfd, int fd, uint32_t events, uint64_t token) { return ctl(epfd, EPOLL_CTL_ADD, fd, events, token); }
int cs_epoll_mod(int epfd, int fd, uint32_t events, uint64_t token) { return ctl(epfd, EPOLL_CTL_MOD, fd, events, token); }
int cs_epoll_del(int epfd, int fd) { return ctl(epfd, EPOLL_CTL_DEL, fd, 0, 0); }

int cs_epoll_wait(int epfd, cs_event *out, int max, int timeout_ms) {
    struct epoll_event evs[256];
    if (max > 256) max = 256;
    int n = epoll_wait(epfd, evs, max, timeout_ms);
    for (int i = 0; i < n; i++) {
        out[i].token = evs[i].data.u64;
        out[i].events = evs[i].events;
    }
    return n;
}

int cs_accept(int fd, struct sockaddr *addr, unsigned int *len) {
    return accept4(fd, addr, (socklen_t *)len, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int cs_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }
int cs_eventfd_signal(int fd) { uint64_t one = 1; return (int)write(fd, &one, sizeof one); }
int cs_eventfd_drain(int fd) { uint64_t v; return (int)read(fd, &v, sizeof v); }

static sigset_t handled(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    return set;
}

int cs_block_signals(void) {
    signal(SIGPIPE, SIG_IGN);
    sigset_t set = handled();
    return pthread_sigmask(SIG_BLOCK, &set, NULL);
}

int cs_wait_signal(void) {
    sigset_t set = handled();
    int sig = 0;
    if (sigwait(&set, &sig) != 0) return -1;
    return sig;
}
