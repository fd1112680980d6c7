import Glibc
import IdlegateBase

/// The HMAC secret behind session keys: from `session_secret`, or from the key file, created with mode
/// 0600 on first start. Stable across restarts, and shareable by replicas (same file, same keys).
public enum SessionSecret {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// The configured secret (hex), else the key file's; nil when there is no key file yet. Throws when
    /// the key file cannot be read or holds no secret: a corrupt file is never taken for a missing one.
    public static func existing(secretHex: String, keyFile path: String) throws -> [UInt8]? {
        if !secretHex.isEmpty {
            guard let secret = Hex.decode(secretHex) else { throw Failure(description: "session_secret: not an even number of hex digits") }
            return secret
        }
        guard let bytes = try read(path) else { return nil }
        let isSpace = { (c: UInt8) in c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 }
        let trimmed = bytes.drop(while: isSpace).reversed().drop(while: isSpace).reversed()
        guard trimmed.count >= 32, let secret = Hex.decode(String(decoding: trimmed, as: UTF8.self)) else {
            throw Failure(description: "key_file \(path): not a hex secret (delete it to have a new one made; session keys change)")
        }
        return secret
    }

    /// The secret `serve` uses: the existing one, or a new random one written to the key file
    /// (`created`). Throws, and never falls back to a fixed secret, when OpenSSL gives no random bytes.
    public static func load(secretHex: String, keyFile path: String) throws -> (secret: [UInt8], created: Bool) {
        if let secret = try existing(secretHex: secretHex, keyFile: path) { return (secret, false) }
        let secret = try random()
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw Failure(description: "key_file \(path): cannot create: \(String(cString: strerror(errno)))")
        }
        let text = Array((Hex.encode(secret) + "\n").utf8)
        let written = write(fd, text, text.count)
        let synced = fsync(fd) == 0
        close(fd)
        guard written == text.count, synced else { throw Failure(description: "key_file \(path): cannot write") }
        return (secret, true)
    }

    /// A fresh 32-byte secret from OpenSSL's generator; throws when it has none to give.
    public static func random() throws -> [UInt8] {
        guard let secret = SessionKeyDeriver.randomSecret() else {
            throw Failure(description: "OpenSSL's random generator gave no bytes (RAND_bytes failed): refusing to make a session secret")
        }
        return secret
    }

    /// The file's bytes; nil when it does not exist.
    private static func read(_ path: String) throws -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw Failure(description: "key_file \(path): cannot read: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = Glibc.read(fd, &buf, buf.count)
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw Failure(description: "key_file \(path): cannot read: \(String(cString: strerror(errno)))") }
            return Array(buf[0..<n])
        }
    }


}
