import Glibc
import IdlegateConfig
import IdlegateHTTP
import IdlegateSessions
import Logging

/// The HMAC secret behind session keys: from `session_secret`, or from `key_file`, created with mode
/// 0600 on first start. Stable across restarts, and shareable by replicas (same file, same keys).
public enum SessionSecret {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// The secret `serve` would use, if there is one already (nothing is created): for `idlegate reap`.
    public static func existing(config: Config) -> [UInt8]? {
        try? configured(config)
    }

    /// `session_secret`, or the key file's secret; nil when there is no key file yet; throws when the
    /// key file is not a secret.
    static func configured(_ config: Config) throws -> [UInt8]? {
        if !config.sessionSecret.isEmpty { return hexBytes(config.sessionSecret) }
        let path = config.effectiveKeyFile
        guard let bytes = read(path) else { return nil }
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: " \n\r\t")
        guard text.count >= 32, text.count % 2 == 0, text.allSatisfy(\.isHexDigit) else {
            throw Failure(description: "key_file \(path): not a hex secret (delete it to have a new one made; sessions keys change)")
        }
        return hexBytes(text)
    }

    static func load(config: Config, logger: Logger) throws -> [UInt8] {
        if let secret = try configured(config) { return secret }
        let path = config.effectiveKeyFile
        guard let secret = SessionKeyDeriver.randomSecret() else { throw Failure(description: "no random bytes from OpenSSL") }
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw Failure(description: "key_file \(path): cannot create: \(String(cString: strerror(errno)))")
        }
        let text = Array((secret.map { String(format2: $0) }.joined() + "\n").utf8)
        let written = write(fd, text, text.count)
        fsync(fd)
        close(fd)
        guard written == text.count else { throw Failure(description: "key_file \(path): cannot write") }
        logger.notice("created session key file \(path) (mode 0600)")
        return secret
    }

    private static func read(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = Glibc.read(fd, &buf, buf.count)
        return n > 0 ? Array(buf[0..<n]) : nil
    }

    static func hexBytes(_ text: String) -> [UInt8] {
        var out: [UInt8] = []
        var chars = Array(text.utf8)
        if chars.count % 2 == 1 { chars.insert(UInt8(ascii: "0"), at: 0) }
        for i in stride(from: 0, to: chars.count, by: 2) {
            out.append(UInt8(String(decoding: chars[i..<i + 2], as: UTF8.self), radix: 16) ?? 0)
        }
        return out
    }
}

extension String {
    init(format2 byte: UInt8) {
        let s = String(byte, radix: 16)
        self = s.count == 1 ? "0" + s : s
    }

}
