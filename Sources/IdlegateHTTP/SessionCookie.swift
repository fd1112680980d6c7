/// What a request's `Cookie` lines say about `session_id`, and the one Cookie line to forward.
///
/// Odoo's two servers join repeated Cookie lines differently before werkzeug reads them: werkzeug's
/// own HTTP server (port 8069) with a bare `,` (`serving.py`), gevent's WSGI server (port 8072:
/// `/websocket`, `/longpolling`) with `; ` (`pywsgi.py`). A quote opened on one line can close on the
/// next, so the same lines can name one session on one port and another on the other, and re-gluing
/// pieces of a header can change which quotes pair up (`../shared/odoo/FACTS.md`, found against a real
/// Odoo 18). So idlegate reads the id under both joins, refuses the request when they disagree, and
/// forwards a header whose meaning it has fixed itself:
/// - as sent, only when it is one line of plain `name=value` pairs (`isPlain`), which every werkzeug
///   version reads the same;
/// - otherwise one line it built (`canonical`): the checked `session_id` first, then only cookies whose
///   names are tokens and whose values are cookie-octets (or commas), read back before it goes out.
public struct SessionCookie: Sendable, Equatable {
    /// The `session_id` Odoo 16+ would use (the first entry, unquoted; possibly empty), nil when none:
    /// read under werkzeug's `,` join, which is also how idlegate reads a single line. (A slice: for
    /// the usual plain line, of the head's own bytes, with no copy.)
    public let value: ArraySlice<UInt8>?
    /// The `,` and `; ` joins of several lines name different sessions (by `isSessionID`): the
    /// request means one thing on Odoo's HTTP port and another on its gevent port. Refuse it.
    public let conflict: Bool
    /// One line of plain `name=value` pairs joined by `;` or `; `, no name twice, no name werkzeug 0.16
    /// drops: safe to forward as it came.
    public let isPlain: Bool

    /// Reads every Cookie line of `fields`. `isSessionID` tells a well-formed id from junk (Odoo
    /// ignores junk, so two joins that both read junk do not conflict). Allocates only for the id it
    /// returns, and for the joins when there are several lines.
    public init(_ fields: HTTPFields, isSessionID: ([UInt8]) -> Bool) {
        var line = -1
        var lines = 0
        for i in 0..<fields.count where fields.known(at: i) == .cookie {
            lines += 1
            if line < 0 { line = i }
        }
        guard lines > 0 else {
            value = nil
            conflict = false
            isPlain = true
            return
        }
        if lines == 1 {
            let header = fields.valueBytes(at: line)
            let plain = Self.readPlain(header)
            // A plain line's first `session_id` is what every reader finds (no quote, no space to
            // strip): taken from the same pass. Any other line is read as werkzeug reads it.
            value = plain.isPlain ? plain.sessionID.map { header[$0] } : Self.firstSessionID(header, .search)?[...]
            conflict = false
            isPlain = plain.isPlain
            return
        }
        let comma = Self.firstSessionID(Self.join(fields, UInt8(ascii: ","))[...], .search)
        let semicolon = Self.firstSessionID(Self.join(fields, UInt8(ascii: ";"), space: true)[...], .search)
        let commaID = comma.flatMap { isSessionID($0) ? $0 : nil }
        let semicolonID = semicolon.flatMap { isSessionID($0) ? $0 : nil }
        value = comma?[...]
        conflict = commaID != semicolonID
        isPlain = false
    }

    /// The Cookie lines of `fields` joined as one of Odoo's servers joins them.
    public static func join(_ fields: HTTPFields, _ separator: UInt8, space: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        var first = true
        for i in 0..<fields.count where fields.known(at: i) == .cookie {
            if !first {
                out.append(separator)
                if space { out.append(UInt8(ascii: " ")) }
            }
            first = false
            out.append(contentsOf: fields.valueBytes(at: i))
        }
        return out
    }

    /// The first `session_id` entry's value as `reader` reads it, unquoted; nil when there is none.
    public static func firstSessionID(_ header: ArraySlice<UInt8>, _ reader: CookieHeader.Reader) -> [UInt8]? {
        var first: [UInt8]? = nil
        CookieHeader.forEach(header, reader) { sp in
            if first == nil && CookieHeader.isSessionName(header, sp.name) { first = CookieHeader.unquote(header[sp.value]) }
        }
        return first
    }

    /// Whether one line is `pair (";" [" "] pair)*`, each pair a token, `=`, and cookie-octets or commas,
    /// with no name twice and no name werkzeug 0.16 drops. Such a line has no quote, backslash or stray
    /// whitespace: every werkzeug version reads exactly its pairs. (An empty line is plain too.)
    public static func isPlain(_ header: ArraySlice<UInt8>) -> Bool { readPlain(header).isPlain }

    /// `isPlain`, and the range of the first `session_id` value of a plain line: one pass over the bytes.
    static func readPlain(_ header: ArraySlice<UInt8>) -> (isPlain: Bool, sessionID: Range<Int>?) {
        let read = header.withUnsafeBufferPointer(readPlain)
        return (read.isPlain, read.sessionID.map { ($0.lowerBound + header.startIndex)..<($0.upperBound + header.startIndex) })
    }

    private static func readPlain(_ b: UnsafeBufferPointer<UInt8>) -> (isPlain: Bool, sessionID: Range<Int>?) {
        let n = b.count
        if n == 0 { return (true, nil) }
        let notPlain: (isPlain: Bool, sessionID: Range<Int>?) = (false, nil)
        let maxPairs = 32
        return withUnsafeTemporaryAllocation(of: Range<Int>.self, capacity: maxPairs) { names in
            var count = 0
            var session: Range<Int>? = nil
            var i = 0
            while true {
                let nameStart = i
                i = ByteClass.endOfLongRun(of: ByteClass.token, in: UnsafeRawBufferPointer(b), from: i, to: n)
                let name = nameStart..<i
                guard !name.isEmpty, i < n, b[i] == CookieHeader.equals else { return notPlain }
                i += 1
                let valueStart = i
                i = ByteClass.cookieValueEnd(b, from: i)
                if count == maxPairs || CookieHeader.isAttributeName(UnsafeBufferPointer(rebasing: b[name])) { return notPlain }
                for k in 0..<count where names[k].count == name.count
                    && Words.equal(b.baseAddress! + names[k].lowerBound, b.baseAddress! + name.lowerBound, name.count) {
                    return notPlain
                }
                if session == nil && CookieHeader.isSessionName(UnsafeBufferPointer(rebasing: b[name])) { session = valueStart..<i }
                names[count] = name
                count += 1
                if i == n { return (true, session) }
                guard b[i] == CookieHeader.semicolon else { return notPlain }
                i += 1
                if i < n && b[i] == UInt8(ascii: " ") { i += 1 }
                if i == n { return notPlain }
            }
        }
    }

    /// The one Cookie line idlegate forwards when it does not pass the client's as sent: `session_id=`
    /// the checked id first (none when `sessionID` is nil), then every other cookie that both readers
    /// find, with the same value, in the lines joined as a browser means them (`; `, RFC 6265 §5.4 and
    /// RFC 9113 §8.2.3), and whose name is a token and value cookie-octets or commas — the first of each
    /// name, none named like a cookie attribute. Whatever else the client sent is dropped: escaped,
    /// space-, quote- or backslash-carrying, non-ASCII and duplicate cookies (none of Odoo's own is
    /// such).
    ///
    /// The line is then read back by both readers; unless each finds exactly the intended pairs, only
    /// `session_id` goes. Nil when nothing is left to send.
    public static func canonical(_ fields: HTTPFields, sessionID: [UInt8]?) -> [UInt8]? {
        let joined = join(fields, UInt8(ascii: ";"), space: true)
        var byFindall: [(ArraySlice<UInt8>, [UInt8])] = []
        CookieHeader.forEach(joined[...], .findall) { sp in
            byFindall.append((joined[sp.name], CookieHeader.unquote(joined[sp.value])))
        }
        var kept: [(ArraySlice<UInt8>, [UInt8])] = []
        CookieHeader.forEach(joined[...], .search) { sp in
            let name = joined[sp.name]
            let value = CookieHeader.unquote(joined[sp.value])
            guard !CookieHeader.isSessionName(joined[...], sp.name),
                  name.allSatisfy(CookieHeader.isPlainNameByte), value.allSatisfy(CookieHeader.isPlainValueByte),
                  !CookieHeader.isAttributeName(name),
                  !kept.contains(where: { $0.0.elementsEqual(name) }),
                  byFindall.contains(where: { $0.0.elementsEqual(name) && $0.1 == value })
            else { return }
            kept.append((name, value))
        }
        var intended: [([UInt8], [UInt8])] = []
        if let id = sessionID { intended.append((CookieHeader.sessionName, id)) }
        for (name, value) in kept { intended.append((Array(name), value)) }
        guard !intended.isEmpty else { return nil }
        var line: [UInt8] = []
        for (name, value) in intended {
            if !line.isEmpty { line.append(contentsOf: [CookieHeader.semicolon, UInt8(ascii: " ")]) }
            line.append(contentsOf: name)
            line.append(CookieHeader.equals)
            line.append(contentsOf: value)
        }
        if reads(line, as: intended) { return line }
        guard let id = sessionID else { return nil }
        return CookieHeader.sessionName + [CookieHeader.equals] + id
    }

    /// Whether every reader finds exactly `pairs` in `line`, in order (and so werkzeug 0.16, which
    /// keeps the last of a name, agrees with 2.x, which keeps the first: no name repeats).
    public static func reads(_ line: [UInt8], as pairs: [([UInt8], [UInt8])]) -> Bool {
        for reader in CookieHeader.Reader.allCases {
            var found: [([UInt8], [UInt8])] = []
            CookieHeader.forEach(line[...], reader) { sp in
                found.append((Array(line[sp.name]), CookieHeader.unquote(line[sp.value])))
            }
            guard found.count == pairs.count, zip(found, pairs).allSatisfy({ $0.0 == $1.0 && $0.1 == $1.1 }) else { return false }
            if found.contains(where: { CookieHeader.isAttributeName($0.0[...]) }) { return false }
        }
        return true
    }
}

/// The Cookie header a forwarded request carries.
public enum ForwardedCookie: Sendable, Equatable {
    /// The client's one Cookie line, as it came.
    case asSent
    /// One line idlegate built (nil: no Cookie header at all, nothing was left).
    case rebuilt(String?)
}

extension SessionCookie {
    /// What to forward once `id` is the id checked: the client's line only when it is plain and its
    /// `session_id` (if any) is that well-formed id; otherwise the canonical line with `id` when `valid`.
    /// `moved`: the id came from `?session_id=` or `X-Openerp-Session-Id` (Odoo ≤ 15), not this header.
    public func forwarded(_ fields: HTTPFields, id: ArraySlice<UInt8>?, valid: Bool, moved: Bool) -> ForwardedCookie {
        if !moved && isPlain && (value == nil || valid) { return .asSent }
        return .canonical(fields, sessionID: valid ? id.map { Array($0) } : nil)
    }
}

extension ForwardedCookie {
    /// The canonical line (`SessionCookie.canonical`) as what is forwarded.
    public static func canonical(_ fields: HTTPFields, sessionID: [UInt8]?) -> ForwardedCookie {
        .rebuilt(SessionCookie.canonical(fields, sessionID: sessionID).map { String(decoding: $0, as: UTF8.self) })
    }
}
