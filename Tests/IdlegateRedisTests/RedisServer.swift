import Foundation
import Glibc
import IdlegateBase

/// A real `redis-server` (Debian's), started for a test on a free loopback port with no persistence,
/// and stopped when the test is done.
final class RedisServer: @unchecked Sendable {
    let port: UInt16
    private var pid: pid_t = 0

    init(extra: [String] = []) throws {
        port = Self.freePort()
        let args = [Self.binary, "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no",
                    "--logfile", "/dev/null"] + extra
        var argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        guard posix_spawn(&pid, Self.binary, nil, nil, &argv, environ) == 0 else {
            throw POSIXError(.ENOENT)
        }
        for _ in 0..<200 {
            if (try? command(["PING"])) == "+PONG" { return }
            usleep(20_000)
        }
        throw CocoaError(.fileNoSuchFile, userInfo: [NSLocalizedDescriptionKey: "redis-server did not answer on port \(port)"])
    }

    deinit { stop() }

    func stop() {
        guard pid > 0 else { return }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        pid = 0
    }

    static var binary: String {
        for p in ["/usr/bin/redis-server", "/usr/local/bin/redis-server"] where FileManager.default.isExecutableFile(atPath: p) { return p }
        return "/usr/bin/redis-server"
    }
    static var available: Bool { FileManager.default.isExecutableFile(atPath: binary) }

    /// One command over a blocking socket, the first reply line back (tests only).
    @discardableResult
    func command(_ args: [String]) throws -> String { try lines(args).first ?? "" }

    /// One hash field (nil when there is none).
    func hget(_ key: String, _ field: String) throws -> String? {
        let l = try lines(["HGET", key, field])
        return l.count > 1 && l[0] != "$-1" ? l[1] : nil
    }

    /// One command, the lines of its reply (a reply that fits one read).
    func lines(_ args: [String]) throws -> [String] {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        sa.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { throw POSIXError(.ECONNREFUSED) }
        var out = "*\(args.count)\r\n"
        for a in args { out += "$\(a.utf8.count)\r\n\(a)\r\n" }
        _ = out.withCString { send(fd, $0, strlen($0), 0) }
        var buffer = [UInt8](repeating: 0, count: 65_536)
        let n = recv(fd, &buffer, buffer.count, 0)
        guard n > 0 else { throw POSIXError(.ECONNRESET) }
        return String(decoding: buffer[..<n], as: UTF8.self).components(separatedBy: "\r\n")
    }

    static func freePort() -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return UInt16(bigEndian: sa.sin_port)
    }
}
