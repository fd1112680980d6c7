import ArgumentParser
import Glibc
import Foundation
import IdlegateConfig
import IdlegateIO
import IdlegateTLS

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Validate the configuration and print the effective values as YAML, like nginx -t.")

    @OptionGroup var options: ConfigOptions

    func run() throws {
        let c = try options.loadOrExit()
        print("# effective configuration (defaults, then the file, then IDLEGATE_* variables, then flags)")
        print(c.yaml(), terminator: "")
        if !checkCertificates(c) { throw fail("certificate check failed (see the lines above)") }
        print("# configuration ok")
    }

    /// Loads every certificate the way the listener (and the upstream client) would: the key matches,
    /// the chain is in order, and each expiry date is printed. False when one fails or has expired.
    func checkCertificates(_ c: Config) -> Bool {
        var pairs: [(String, CertificateFiles)] = []
        if c.tls.enabled { pairs.append(("tls", CertificateFiles(cert: c.tls.cert, key: c.tls.key))) }
        for (i, f) in c.tls.certificates.enumerated() { pairs.append(("tls.certificates[\(i)]", f)) }
        if !c.upstreamTLS.cert.isEmpty { pairs.append(("upstream_tls", CertificateFiles(cert: c.upstreamTLS.cert, key: c.upstreamTLS.key))) }
        var ok = true
        let day = DateFormatter()
        day.dateFormat = "yyyy-MM-dd HH:mm 'UTC'"
        day.timeZone = TimeZone(identifier: "UTC")
        for (key, f) in pairs {
            do {
                let r = try CertificateInfo.inspect(TLSCertificateFiles(cert: f.cert, key: f.key))
                let names = r.names.joined(separator: ", ")
                if let end = r.notAfter {
                    let days = Int(end.timeIntervalSinceNow / 86_400)
                    if end < Date() {
                        print("# \(key): \(f.cert): EXPIRED on \(day.string(from: end)) (\(names))")
                        ok = false
                    } else {
                        print("# \(key): \(f.cert): \(names); chain of \(r.chainLength), key matches; expires \(day.string(from: end)) (in \(days) days)")
                    }
                }
            } catch {
                print("# \(key): \(error)")
                ok = false
            }
        }
        if !c.upstreamTLS.ca.isEmpty && access(c.upstreamTLS.ca, R_OK) != 0 {
            print("# upstream_tls.ca: cannot read \(c.upstreamTLS.ca)")
            ok = false
        }
        return ok
    }
}

/// Whether a TCP connection to `authority` opens within a second.
func upstreamReachable(_ authority: String) -> Bool {
    guard let addresses = try? SocketAddress.resolve(authority) else { return false }
    for a in addresses {
        guard let fd = try? Socket.connect(to: a) else { continue }
        defer { close(fd) }
        var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        if poll(&p, 1, 1000) == 1 && Socket.pendingError(fd) == 0 { return true }
    }
    return false
}
