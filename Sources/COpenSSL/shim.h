// OpenSSL (Debian libssl-dev) for idlegate: HMAC-SHA256 of session ids, random keys, SHA-1 for
// WebSocket handshakes, and TLS later. The low-level SHA256_* calls are deprecated in OpenSSL 3 but
// are what lets an HMAC reuse its precomputed key pads (two compressions per session id).
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/sha.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
