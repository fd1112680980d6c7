// OpenSSL (Debian libssl-dev) for idlegate: HMAC-SHA256 of session ids, random keys, SHA-1 for
// WebSocket handshakes, and TLS (IdlegateTLS). The low-level SHA256_* calls are deprecated in OpenSSL 3
// but are what lets an HMAC reuse its precomputed key pads (two compressions per session id).
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/sha.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/pem.h>

// What OpenSSL spells as macros over SSL_CTX_ctrl / SSL_ctrl, which Swift cannot call.
static inline int idg_ctx_set_min_proto(SSL_CTX *c, int v) { return (int)SSL_CTX_set_min_proto_version(c, v); }
static inline int idg_ctx_set_max_proto(SSL_CTX *c, int v) { return (int)SSL_CTX_set_max_proto_version(c, v); }
static inline long idg_ctx_set_mode(SSL_CTX *c, long m) { return SSL_CTX_set_mode(c, m); }
static inline long idg_ctx_set_session_cache_mode(SSL_CTX *c, long m) { return SSL_CTX_set_session_cache_mode(c, m); }
static inline long idg_ctx_sess_set_cache_size(SSL_CTX *c, long n) { return SSL_CTX_sess_set_cache_size(c, n); }
static inline long idg_ctx_set_servername_callback(SSL_CTX *c, int (*cb)(SSL *, int *, void *), void *arg) {
    SSL_CTX_set_tlsext_servername_arg(c, arg);
    return SSL_CTX_set_tlsext_servername_callback(c, cb);
}
static inline int idg_set_host_name(SSL *s, const char *name) { return (int)SSL_set_tlsext_host_name(s, name); }
static inline int idg_ctx_get_extra_chain_certs(SSL_CTX *c, STACK_OF(X509) **chain) { return (int)SSL_CTX_get_extra_chain_certs(c, chain); }
static inline int idg_x509_stack_count(STACK_OF(X509) *s) { return s ? sk_X509_num(s) : 0; }
static inline X509 *idg_x509_stack_at(STACK_OF(X509) *s, int i) { return sk_X509_value(s, i); }
// A certificate's subject alternative names (X509_get_ext_d2i's untyped answer).
static inline int idg_general_names_count(void *n) { return sk_GENERAL_NAME_num((GENERAL_NAMES *)n); }
static inline GENERAL_NAME *idg_general_names_at(void *n, int i) { return sk_GENERAL_NAME_value((GENERAL_NAMES *)n, i); }
static inline void idg_general_names_free(void *n) { GENERAL_NAMES_free((GENERAL_NAMES *)n); }

// SSL_OP_* are built with a function-like macro in OpenSSL 3, which Swift does not import.
static const uint64_t IDG_OP_NO_TICKET = SSL_OP_NO_TICKET;
static const uint64_t IDG_OP_NO_RENEGOTIATION = SSL_OP_NO_RENEGOTIATION;
static const uint64_t IDG_OP_IGNORE_UNEXPECTED_EOF = SSL_OP_IGNORE_UNEXPECTED_EOF;
static const uint64_t IDG_OP_NO_COMPRESSION = SSL_OP_NO_COMPRESSION;
static const int IDG_R_HTTP_REQUEST = SSL_R_HTTP_REQUEST;

// A socket BIO of idlegate's own: sends with MSG_NOSIGNAL (OpenSSL's own writes with write(2), which
// raises SIGPIPE on a closed connection), and remembers whether the last read drained the socket (it
// returned less than asked, or nothing yet), so that an edge-triggered reader knows when to stop without
// one more read that says EAGAIN. Used with read-ahead, so that OpenSSL asks for all it has room for.
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct { int fd; int drained; int eof; } idg_socket;

static int idg_bio_write(BIO *b, const char *buf, int len) {
    idg_socket *s = (idg_socket *)BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t n;
    do { n = send(s->fd, buf, (size_t)len, MSG_NOSIGNAL); } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_write(b);
    return (int)n;
}

static int idg_bio_read(BIO *b, char *buf, int len) {
    idg_socket *s = (idg_socket *)BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t n;
    do { n = read(s->fd, buf, (size_t)len); } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        BIO_set_retry_read(b);
        s->drained = 1;
    } else {
        s->drained = n < len;
        s->eof = n == 0;
    }
    return (int)n;
}

// FLUSH: nothing is buffered here. EOF: the peer closed (OpenSSL asks, to tell a close without
// close_notify from a broken read).
static long idg_bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
    (void)num; (void)ptr;
    if (cmd == BIO_CTRL_FLUSH) return 1;
    if (cmd == BIO_CTRL_EOF) return ((idg_socket *)BIO_get_data(b))->eof;
    return 0;
}

static int idg_bio_destroy(BIO *b) {
    OPENSSL_free(BIO_get_data(b));
    BIO_set_data(b, NULL);
    return 1;
}

static inline BIO_METHOD *idg_socket_method(void) {
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "idlegate socket");
    if (m == NULL) return NULL;
    BIO_meth_set_write(m, idg_bio_write);
    BIO_meth_set_read(m, idg_bio_read);
    BIO_meth_set_ctrl(m, idg_bio_ctrl);
    BIO_meth_set_destroy(m, idg_bio_destroy);
    return m;
}

/// A BIO over `fd` (not owned: the transport closes it), made with `idg_socket_method()`'s method.
static inline BIO *idg_socket_bio(BIO_METHOD *m, int fd) {
    idg_socket *s = (idg_socket *)OPENSSL_zalloc(sizeof(idg_socket));
    if (s == NULL) return NULL;
    BIO *b = BIO_new(m);
    if (b == NULL) { OPENSSL_free(s); return NULL; }
    s->fd = fd;
    BIO_set_data(b, s);
    BIO_set_init(b, 1);
    return b;
}

static inline int idg_socket_drained(BIO *b) { return ((idg_socket *)BIO_get_data(b))->drained; }
