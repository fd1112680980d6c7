import COpenSSL
import Glibc

/// TLS to an upstream (Odoo on another host, over https): the server's certificate is verified against
/// the system's CA bundle or a configured one, and must name the host idlegate dialled (SNI carries the
/// same name). A certificate that fails is a failed connection — never a silent fall back to plain or
/// unverified. Optionally a client certificate, for an Odoo behind a proxy that asks for one.
public final class TLSClient: @unchecked Sendable {
    private let context: OpaquePointer

    /// `caFile`: PEM bundle to trust instead of the system's. `certificate`: a client chain and key.
    public init(caFile: String? = nil, certificate: TLSCertificateFiles? = nil) throws {
        guard let ctx = SSL_CTX_new(TLS_client_method()) else { throw TLSError.openSSL("SSL_CTX_new") }
        context = ctx
        guard idg_ctx_set_min_proto(ctx, TLS1_2_VERSION) == 1 else { throw TLSError.openSSL("TLS versions") }
        _ = SSL_CTX_set_options(ctx, IDG_OP_NO_RENEGOTIATION | IDG_OP_NO_COMPRESSION | IDG_OP_IGNORE_UNEXPECTED_EOF)
        _ = idg_ctx_set_mode(ctx, Int(SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS))
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
        if let caFile {
            guard SSL_CTX_load_verify_locations(ctx, caFile, nil) == 1 else { throw TLSError.openSSL("cannot load the CA bundle \(caFile)") }
        } else {
            guard SSL_CTX_set_default_verify_paths(ctx) == 1 else { throw TLSError.openSSL("cannot load the system CA bundle") }
        }
        if let certificate { try CertificateInfo.load(certificate, into: ctx) }
        _ = http11ALPN.withUnsafeBufferPointer { SSL_CTX_set_alpn_protos(ctx, $0.baseAddress, UInt32($0.count)) }
    }

    deinit { SSL_CTX_free(context) }

    /// A TLS transport for a connected (or connecting) socket to `host`: SNI names it (unless it is an
    /// IP address, RFC 6066 §3) and the certificate must match it. Owns `fd` from here on.
    public func transport(fd: Int32, host: String) throws -> TLSTransport {
        guard let ssl = SSL_new(context) else {
            Glibc.close(fd)
            throw TLSError.openSSL("SSL_new")
        }
        let isIP = host.contains(":") || host.allSatisfy { $0 == "." || $0.isNumber }
        if !isIP { _ = idg_set_host_name(ssl, host) }
        guard SSL_set1_host(ssl, host) == 1 else {
            SSL_free(ssl)
            Glibc.close(fd)
            throw TLSError.openSSL("SSL_set1_host \(host)")
        }
        SSL_set_connect_state(ssl)
        return TLSTransport(fd: fd, ssl: ssl, owner: self)
    }
}

private let http11ALPN: [UInt8] = [8] + Array("http/1.1".utf8)
