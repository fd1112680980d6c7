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
static inline int idg_ctx_add_extra_chain_cert(SSL_CTX *c, X509 *x) { return (int)SSL_CTX_add_extra_chain_cert(c, x); }
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
static const uint64_t IDG_OP_NO_TLSv1_3 = SSL_OP_NO_TLSv1_3;
static const int IDG_R_HTTP_REQUEST = SSL_R_HTTP_REQUEST;
