import COpenSSL
import Foundation

/// Reading certificates: loading a chain and key into a context with checks that name the file and the
/// fault, the names a certificate covers, and what `idlegate check` prints about each one.
public enum CertificateInfo {
    /// One loaded chain, as `idlegate check` reports it.
    public struct Report: Sendable {
        public var names: [String]
        public var subject: String
        public var notAfter: Date?
        /// Certificates in the file (the leaf and its issuers).
        public var chainLength: Int
    }

    /// Loads `files` into `ctx`: the chain (leaf first, each next one the issuer of the one before), then
    /// the key, which must match the leaf.
    static func load(_ files: TLSCertificateFiles, into ctx: OpaquePointer) throws {
        guard SSL_CTX_use_certificate_chain_file(ctx, files.cert) == 1 else {
            throw TLSError.openSSL("cannot load the certificate chain \(files.cert)")
        }
        let mismatch = TLSError("the private key \(files.key) does not match the certificate \(files.cert)")
        guard SSL_CTX_use_PrivateKey_file(ctx, files.key, SSL_FILETYPE_PEM) == 1 else {
            let reason = OpenSSLErrors.drain()
            throw reason.contains("key values mismatch") ? mismatch : TLSError("cannot load the private key \(files.key): \(reason)")
        }
        guard SSL_CTX_check_private_key(ctx) == 1 else {
            OpenSSLErrors.clear()
            throw mismatch
        }
        var chain: OpaquePointer? = nil
        _ = idg_ctx_get_extra_chain_certs(ctx, &chain)
        var below = SSL_CTX_get0_certificate(ctx)
        for i in 0..<idg_x509_stack_count(chain) {
            let issuer = idg_x509_stack_at(chain, i)
            if let subject = below, let issuer, X509_check_issued(issuer, subject) != X509_V_OK {
                throw TLSError("the certificate chain \(files.cert) is out of order: certificate \(i + 2) did not issue certificate \(i + 1) "
                    + "(the leaf comes first, then each issuer)")
            }
            below = issuer
        }
    }

    /// Loads `files` the way a listener would and describes the leaf.
    public static func inspect(_ files: TLSCertificateFiles) throws -> Report {
        guard let ctx = SSL_CTX_new(TLS_server_method()) else { throw TLSError.openSSL("SSL_CTX_new") }
        defer { SSL_CTX_free(ctx) }
        try load(files, into: ctx)
        guard let leaf = SSL_CTX_get0_certificate(ctx) else { throw TLSError("no certificate in \(files.cert)") }
        var chain: OpaquePointer? = nil
        _ = idg_ctx_get_extra_chain_certs(ctx, &chain)
        return Report(names: dnsNames(leaf), subject: subject(leaf), notAfter: notAfter(leaf), chainLength: 1 + Int(idg_x509_stack_count(chain)))
    }

    /// The DNS names in the subject alternative names, or the common name when there are none.
    static func dnsNames(_ x: OpaquePointer) -> [String] {
        var names: [String] = []
        if let list = X509_get_ext_d2i(x, NID_subject_alt_name, nil, nil) {
            for i in 0..<idg_general_names_count(list) {
                guard let gn = idg_general_names_at(list, i), gn.pointee.type == GEN_DNS, let s = gn.pointee.d.dNSName,
                      let bytes = ASN1_STRING_get0_data(s) else { continue }
                names.append(String(decoding: UnsafeBufferPointer(start: bytes, count: Int(ASN1_STRING_length(s))), as: UTF8.self).lowercased())
            }
            idg_general_names_free(list)
        }
        if names.isEmpty, let cn = commonName(x) { names.append(cn.lowercased()) }
        return names
    }

    static func commonName(_ x: OpaquePointer) -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        let n = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, &buffer, Int32(buffer.count))
        return n > 0 ? buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) } : nil
    }

    static func subject(_ x: OpaquePointer) -> String {
        guard let line = X509_NAME_oneline(X509_get_subject_name(x), nil, 0) else { return "" }
        defer { CRYPTO_free(line, #file, #line) }
        return String(cString: line)
    }

    static func notAfter(_ x: OpaquePointer) -> Date? {
        guard let t = X509_get0_notAfter(x) else { return nil }
        var tm = tm()
        guard ASN1_TIME_to_tm(t, &tm) == 1 else { return nil }
        return Date(timeIntervalSince1970: TimeInterval(timegm(&tm)))
    }

    /// RFC 6125 §6.4: an exact match, or `*.` standing for exactly one left-most label.
    static func name(_ pattern: String, matches host: String) -> Bool {
        if pattern == host { return true }
        guard pattern.hasPrefix("*."), let dot = host.firstIndex(of: ".") else { return false }
        return host[dot...] == pattern.dropFirst(1) && dot > host.startIndex
    }
}
