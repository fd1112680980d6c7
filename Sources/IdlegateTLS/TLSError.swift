import COpenSSL

/// A TLS setup or handshake failure, with OpenSSL's own words for it (the first error on its queue,
/// e.g. "certificate verify failed" or "no shared cipher"), and the file or step it concerns.
public struct TLSError: Error, CustomStringConvertible, Sendable {
    public let description: String

    public init(_ description: String) { self.description = description }

    /// `what` failed: OpenSSL's queued errors are read (and cleared) into the message.
    static func openSSL(_ what: String) -> TLSError {
        let reason = OpenSSLErrors.drain()
        return TLSError(reason.isEmpty ? what : "\(what): \(reason)")
    }
}

enum OpenSSLErrors {
    /// The reasons on this thread's error queue, oldest first, joined; the queue is left empty (a stale
    /// error would be blamed on the next connection's call).
    static func drain() -> String {
        var reasons: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            if let r = ERR_reason_error_string(code) {
                let text = String(cString: r)
                if !reasons.contains(text) { reasons.append(text) }
            } else {
                reasons.append("error \(code)")
            }
        }
        return reasons.joined(separator: ", ")
    }
}
