/// `host:port` and `[v6]:port`, read in one place (listen addresses, upstream URLs, resolving).
public enum HostPort {
    /// The host (brackets removed) and port; `defaultPort` when the text has no port (nil: a port is
    /// required). Nil when the shape is wrong, a bare IPv6 address has no brackets, or the port is not
    /// 1–65535.
    public static func split<S: StringProtocol>(_ text: S, defaultPort: UInt16? = nil) -> (host: String, port: UInt16)? {
        let host: S.SubSequence
        let portText: S.SubSequence?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            if rest.isEmpty {
                portText = nil
            } else {
                guard rest.hasPrefix(":") else { return nil }
                portText = rest.dropFirst()
            }
        } else if let colon = text.lastIndex(of: ":") {
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { return nil }  // a bare IPv6 address needs brackets
        } else {
            host = text[...]
            portText = nil
        }
        guard !host.isEmpty else { return nil }
        guard let portText else { return defaultPort.map { (String(host), $0) } }
        guard portText.allSatisfy(\.isASCIIDigit), let port = UInt16(portText), port > 0 else { return nil }
        return (String(host), port)
    }
}

extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
