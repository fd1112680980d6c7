import IdlegateHTTP

/// Adds the flags Odoo never sets (FACTS: "never Secure, never SameSite") to every Set-Cookie on the way
/// to the browser: Secure when the browser-facing scheme is https, SameSite where absent, HttpOnly on
/// session_id; and, for kiosks, makes session_id a browser-session cookie.
public struct CookieHardening: Sendable {
    public enum SameSite: String, Sendable { case lax = "Lax", strict = "Strict", none = "None" }
    /// When Secure is added: when the browser-facing scheme is https, always, or never.
    public enum Secure: Sendable { case auto, always, never }

    public struct Settings: Sendable {
        /// Add Secure, SameSite and (on session_id) HttpOnly at all.
        public var harden = true
        public var sameSite = SameSite.lax
        public var secure = Secure.auto
        /// Kiosks: session_id becomes a browser-session cookie (no Max-Age or Expires).
        public var sessionOnly = false

        public init() {}
    }

    let settings: Settings

    public init(_ settings: Settings) { self.settings = settings }

    /// The hardened Set-Cookie value; nil when it needs no change. Attribute values come only from
    /// idlegate's own constants, so no CR or LF can be injected.
    public func harden(_ value: String, https: Bool) -> String? {
        guard settings.harden else { return nil }
        let parts = value.split(separator: ";", omittingEmptySubsequences: false)
        guard let first = parts.first else { return nil }
        let isSession = first.split(separator: "=", maxSplits: 1).first.map { $0.trimmingCharacters(in: " \t") } == "session_id"
        var attributes = parts.dropFirst().map { $0.trimmingCharacters(in: " \t") }
        var changed = false
        func has(_ name: String) -> Bool {
            attributes.contains { $0.split(separator: "=", maxSplits: 1).first?.lowercased() == name }
        }
        let secure = settings.secure == .always || (settings.secure == .auto && https)
        if secure && !has("secure") {
            attributes.append("Secure")
            changed = true
        }
        if !has("samesite") && (settings.sameSite != .none || has("secure")) {
            attributes.append("SameSite=\(settings.sameSite.rawValue)")
            changed = true
        }
        if isSession && !has("httponly") {
            attributes.append("HttpOnly")
            changed = true
        }
        if isSession && settings.sessionOnly {
            let before = attributes.count
            attributes.removeAll {
                let n = $0.split(separator: "=", maxSplits: 1).first?.lowercased()
                return n == "max-age" || n == "expires"
            }
            // A cookie being cleared (Max-Age=0) must stay cleared.
            if value.lowercased().contains("max-age=0") { attributes.append("Max-Age=0") }
            if attributes.count != before { changed = true }
        }
        guard changed else { return nil }
        return ([String(first)] + attributes).joined(separator: "; ")
    }

    /// The Set-Cookie that clears session_id, hardened like every other.
    public func clearSessionCookie(https: Bool) -> String {
        let base = "session_id=; Max-Age=0; Path=/"
        return harden(base, https: https) ?? base
    }
}

