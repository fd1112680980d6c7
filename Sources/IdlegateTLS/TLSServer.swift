import COpenSSL
import Glibc

/// A certificate chain and its private key, as PEM files (the chain: the leaf first, then its issuers).
public struct TLSCertificateFiles: Sendable, Equatable {
    public var cert: String
    public var key: String

    public init(cert: String, key: String) {
        self.cert = cert
        self.key = key
    }
}

/// The oldest TLS version a listener accepts: 1.2 (the default) or 1.3 (strict kiosks). 1.0 and 1.1 are
/// never offered.
public enum TLSVersion: String, Sendable, CaseIterable {
    case tls12 = "1.2"
    case tls13 = "1.3"

    var code: Int32 { self == .tls12 ? TLS1_2_VERSION : TLS1_3_VERSION }
}

/// What a TLS listener serves: one OpenSSL context per certificate, the first one the default, the
/// others chosen by the name the client asks for (SNI) against each certificate's DNS names.
/// Settings: TLS 1.2 and 1.3 only; for 1.2 the ECDHE AEAD suites (forward secrecy, no CBC), for 1.3
/// OpenSSL's three; ALPN `http/1.1` (a client offering only h2 gets no ALPN answer and can still speak
/// HTTP/1.1, as with nginx); no renegotiation, no compression. Resumption: a server-side session cache
/// (stateful: TLS 1.3 tickets name a cache entry, TLS 1.2 uses session ids), so that no ticket key
/// outlives the process or needs rotating, and a reload starts a new cache. Shared by every worker
/// (OpenSSL locks its contexts and cache). A reload builds a new one; connections keep the one they
/// started with.
public final class TLSServer: @unchecked Sendable {
    struct Identity {
        let context: OpaquePointer
        let names: [String]
    }
    fileprivate let identities: [Identity]
    public let minimumVersion: TLSVersion

    /// Loads every chain and key; the first is the default. Throws naming the file and what is wrong.
    public init(certificates: [TLSCertificateFiles], minimumVersion: TLSVersion = .tls12, sessionCacheSize: Int = 20_000,
                sessionTimeout: Int = 3600) throws {
        precondition(!certificates.isEmpty, "a TLS listener needs a certificate")
        self.minimumVersion = minimumVersion
        var made: [Identity] = []
        do {
            for files in certificates {
                let ctx = try Self.context(files, minimumVersion: minimumVersion)
                let leaf = SSL_CTX_get0_certificate(ctx)
                made.append(Identity(context: ctx, names: leaf.map(CertificateInfo.dnsNames) ?? []))
            }
        } catch {
            for m in made { SSL_CTX_free(m.context) }
            throw error
        }
        identities = made
        // The cache lives in the first context: OpenSSL looks sessions up in the context an SSL was made
        // from, whichever certificate SNI picks afterwards.
        let first = made[0].context
        _ = idg_ctx_set_session_cache_mode(first, Int(SSL_SESS_CACHE_SERVER))
        _ = idg_ctx_sess_set_cache_size(first, sessionCacheSize)
        _ = SSL_CTX_set_timeout(first, sessionTimeout)
        // Even with one certificate: a name the callback accepts is stored in the session, and OpenSSL
        // resumes a TLS 1.2 session only for a client asking for the same name again.
        _ = idg_ctx_set_servername_callback(first, sniCallback, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit {
        for i in identities { SSL_CTX_free(i.context) }
    }

    /// A TLS transport for an accepted socket (it owns the fd from here on, and closes it on failure).
    public func transport(fd: Int32) throws -> TLSTransport {
        guard let ssl = SSL_new(identities[0].context) else {
            Glibc.close(fd)
            throw TLSError.openSSL("SSL_new")
        }
        SSL_set_accept_state(ssl)
        return TLSTransport(fd: fd, ssl: ssl, owner: self)
    }

    /// The context whose certificate names `host` (exact, or a `*.` wildcard for one label), if another
    /// than the default.
    fileprivate func context(for host: String) -> OpaquePointer? {
        let host = host.lowercased()
        for i in identities where i.names.contains(where: { CertificateInfo.name($0, matches: host) }) {
            return i.context
        }
        return nil
    }

    /// The DNS names of each certificate, in order (for logs and `idlegate check`).
    public var names: [[String]] { identities.map(\.names) }


    private static let tls12Ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
        + "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
    /// Names the sessions of this listener's cache (OpenSSL refuses to resume without one).
    private static let sessionContext = Array("idlegate".utf8)

    private static func context(_ files: TLSCertificateFiles, minimumVersion: TLSVersion) throws -> OpaquePointer {
        guard let ctx = SSL_CTX_new(TLS_server_method()) else { throw TLSError.openSSL("SSL_CTX_new") }
        do {
            guard idg_ctx_set_min_proto(ctx, minimumVersion.code) == 1, idg_ctx_set_max_proto(ctx, TLS1_3_VERSION) == 1 else {
                throw TLSError.openSSL("TLS versions")
            }
            _ = SSL_CTX_set_options(ctx, IDG_OP_NO_TICKET | IDG_OP_NO_RENEGOTIATION | IDG_OP_NO_COMPRESSION | IDG_OP_IGNORE_UNEXPECTED_EOF)
            _ = idg_ctx_set_mode(ctx, Int(SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS))
            guard SSL_CTX_set_cipher_list(ctx, tls12Ciphers) == 1 else { throw TLSError.openSSL("cipher list") }
            // TLS 1.3: one ticket per connection (OpenSSL sends two by default), each a cache entry here.
            _ = SSL_CTX_set_num_tickets(ctx, 1)
            _ = sessionContext.withUnsafeBufferPointer { SSL_CTX_set_session_id_context(ctx, $0.baseAddress, UInt32($0.count)) }
            SSL_CTX_set_alpn_select_cb(ctx, alpnCallback, nil)
            try CertificateInfo.load(files, into: ctx)
            return ctx
        } catch {
            SSL_CTX_free(ctx)
            throw error
        }
    }
}

/// ALPN: `http/1.1` when the client offers it; otherwise no answer (the handshake goes on).
private let alpnCallback: @convention(c) (OpaquePointer?, UnsafeMutablePointer<UnsafePointer<UInt8>?>?, UnsafeMutablePointer<UInt8>?,
                                          UnsafePointer<UInt8>?, UInt32, UnsafeMutableRawPointer?) -> Int32 = { _, out, outLength, offered, offeredLength, _ in
    guard let out, let outLength, let offered else { return SSL_TLSEXT_ERR_NOACK }
    var i = 0
    while i < Int(offeredLength) {
        let n = Int(offered[i])
        guard i + 1 + n <= Int(offeredLength) else { break }
        if n == http11.count && (0..<n).allSatisfy({ offered[i + 1 + $0] == http11[$0] }) {
            out.pointee = offered + i + 1
            outLength.pointee = UInt8(n)
            return SSL_TLSEXT_ERR_OK
        }
        i += 1 + n
    }
    return SSL_TLSEXT_ERR_NOACK
}

private let http11 = Array("http/1.1".utf8)

/// SNI: switches the connection to the certificate that names the requested host; an unknown or
/// missing name keeps the default certificate (as nginx does with its default server).
private let sniCallback: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int32>?, UnsafeMutableRawPointer?) -> Int32 = { ssl, _, arg in
    guard let ssl, let arg, let name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) else { return SSL_TLSEXT_ERR_OK }
    let server = Unmanaged<TLSServer>.fromOpaque(arg).takeUnretainedValue()
    if server.identities.count > 1, let ctx = server.context(for: String(cString: name)) { _ = SSL_set_SSL_CTX(ssl, ctx) }
    return SSL_TLSEXT_ERR_OK
}
