import Glibc  // memcmp
import CZlib
import IdlegateHTTP
import IdlegatePolicy

/// The kiosk screen guard's server half: idlegate's own paths under `/idlegate/` (the script, a passive
/// "how long is left", and a person's "stay signed in"), and which responses get the script.
enum ScreenGuard {
    /// The script's path carries a hash of its text, so a browser may keep it for a year and a new
    /// version is a new URL.
    static let scriptPath = "/idlegate/guard-" + fnv(ScreenGuardScript.source) + ".js"
    /// `GET`: how long the session has left, never counted as activity (a passive path).
    static let statusPath = "/idlegate/session"
    /// `POST` with `X-Idlegate: 1`: a person asked to stay signed in (activity: the clock restarts). The
    /// header keeps a cross-site form from doing it (it cannot be set without a CORS preflight).
    static let extendPath = "/idlegate/extend"

    /// A path under `/idlegate/` (checked on every request: the second byte first).
    @inline(__always) static func isOwn(_ path: Substring) -> Bool {
        var path = path
        return path.withUTF8 { p in
            let own: StaticString = "/idlegate/"
            return p.count >= 10 && p[1] == UInt8(ascii: "i") && memcmp(p.baseAddress!, own.utf8Start, 10) == 0
        }
    }

    static let scriptResponse: [UInt8] = {
        let body = Array(ScreenGuardScript.source.utf8)
        return Array(("HTTP/1.1 200 OK\r\nContent-Type: text/javascript; charset=utf-8\r\nContent-Length: \(body.count)\r\n"
            + "Cache-Control: public, max-age=31536000, immutable\r\nX-Content-Type-Options: nosniff\r\n\r\n").utf8) + body
    }()

    /// The status answer: `remaining` ms and `warn` ms, or `guard: false` when the policy no longer
    /// guards this session (a reload turned it off, or audit mode).
    static func status(_ v: Verdict, keepAlive: Bool) -> [UInt8] {
        let body: String
        if let warn = v.screenGuard {
            body = #"{"guard": true, "remaining": \#(v.key == nil ? 0 : max(0, v.remaining ?? 0)), "warn": \#(warn)}"#
        } else {
            body = #"{"guard": false}"#
        }
        return Array(("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nCache-Control: no-store\r\n"
            + (keepAlive ? "" : "Connection: close\r\n") + "\r\n" + body).utf8)
    }

    /// The tag put into a guarded page: the script, deferred, with the warning time and (when the page's
    /// Content-Security-Policy runs scripts by nonce) that nonce.
    static func snippet(warn: Int64, nonce: String?) -> [UInt8] {
        Array((#"<script src="\#(scriptPath)" data-warn="\#(warn)" defer"# + (nonce.map { #" nonce="\#($0)""# } ?? "") + "></script>").utf8)
    }

    /// Whether a response gets the script: a 200 HTML page (not a download) to a GET of a tracked
    /// session whose policy guards it.
    static func guards(_ v: Verdict, method: String, status: Int, fields: HTTPFields) -> Bool {
        guard v.screenGuard != nil, v.key != nil, status == 200, method == "GET",
              let type = fields.first(.contentType)?.lowercased(), type.hasPrefix("text/html") else { return false }
        if let disposition = fields.first(.contentDisposition)?.lowercased(), disposition.hasPrefix("attachment") { return false }
        return true
    }

    /// A Content-Security-Policy value that lets the script run: unchanged when its script directive
    /// (`script-src-elem`, `script-src` or `default-src`, the first present) allows `'self'` or `*`
    /// without `'strict-dynamic'`, or names a nonce (then returned for the tag). Otherwise `'self'` is
    /// added to that directive: a same-origin script of idlegate's, nothing else.
    static func allowingScript(_ csp: String) -> (csp: String, nonce: String?) {
        var directives = csp.split(separator: ";", omittingEmptySubsequences: false).map { String($0) }
        func tokens(_ d: String) -> [Substring] { d.split(whereSeparator: { $0 == " " || $0 == "\t" }) }
        for name in ["script-src-elem", "script-src", "default-src"] {
            guard let i = directives.firstIndex(where: { tokens($0).first?.lowercased() == name }) else { continue }
            let values = tokens(directives[i]).dropFirst().map { $0.lowercased() }
            if let n = tokens(directives[i]).first(where: { $0.lowercased().hasPrefix("'nonce-") && $0.hasSuffix("'") }) {
                return (csp, String(n.dropFirst(7).dropLast()))
            }
            if values.contains("'strict-dynamic'") || !(values.contains("'self'") || values.contains("*")) {
                if values.contains("'none'") {
                    directives[i] = " " + name + " 'self'"
                } else {
                    directives[i] += " 'self'"
                }
                return (directives.joined(separator: ";"), nil)
            }
            return (csp, nil)
        }
        return (csp, nil)  // no script directive: scripts are not restricted
    }

    /// 64-bit FNV-1a, 12 hex digits: a version for the script's URL.
    static func fnv(_ s: String) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        let hex = String(h, radix: 16)
        return String((String(repeating: "0", count: 16 - hex.count) + hex).prefix(12))
    }
}

/// Puts the guard's tag into an HTML body as it streams: just before the first `</head>` (any case), or
/// at the end when there is none (a script after the last tag still runs). Holds back at most the six
/// bytes that might start a `</head>` split across pieces; once the tag is in, pieces pass as they come.
struct ScriptInjector {
    let snippet: [UInt8]
    private var injected = false
    private var held: [UInt8] = []
    private static let marker = Array("</head>".utf8)

    init(snippet: [UInt8]) { self.snippet = snippet }

    /// Hands `data` on through `emit`, the tag put in where the marker begins.
    mutating func feed(_ data: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer) -> Void) {
        guard !injected else { return emit(data) }
        let text = held + data
        held.removeAll()
        text.withUnsafeBytes { t in
            let m = Self.marker
            if let i = (0..<max(0, t.count - m.count + 1)).first(where: { Self.matches(t, at: $0) }) {
                emit(UnsafeRawBufferPointer(rebasing: t[..<i]))
                snippet.withUnsafeBytes(emit)
                emit(UnsafeRawBufferPointer(rebasing: t[i...]))
                injected = true
                return
            }
            // A `</head>` may begin in the last bytes: keep them for the next piece.
            let keep = min(m.count - 1, t.count)
            emit(UnsafeRawBufferPointer(rebasing: t[..<(t.count - keep)]))
            held = Array(t[(t.count - keep)...])
        }
    }

    /// The end of the body: what was held, and the tag if no `</head>` came.
    mutating func finish(emit: (UnsafeRawBufferPointer) -> Void) {
        held.withUnsafeBytes(emit)
        held.removeAll()
        if !injected {
            snippet.withUnsafeBytes(emit)
            injected = true
        }
    }

    private static func matches(_ t: UnsafeRawBufferPointer, at i: Int) -> Bool {
        for k in 0..<marker.count where t[i + k] | (k >= 2 ? 0x20 : 0) != marker[k] { return false }
        return true
    }
}

/// gzip or deflate (zlib-wrapped, or raw as some servers send it) taken off a body as it streams, for a
/// guarded page. The output is read in 64 KiB steps, so a small hostile input that inflates hugely
/// never sits in memory at once.
final class ContentInflater {
    private var stream = z_stream()
    private var ready = false
    private var raw: Bool
    private(set) var finished = false

    /// `coding`: `gzip` or `deflate`.
    init?(coding: String) {
        raw = false
        guard coding == "gzip" || coding == "x-gzip" || coding == "deflate" else { return nil }
        // 15 + 32: zlib or gzip header, detected.
        guard inflateInit2_(&stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else { return nil }
        ready = true
    }

    deinit { if ready { inflateEnd(&stream) } }

    /// Inflates `input`, handing out the data in pieces; throws on a corrupt stream.
    func inflate(_ input: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer) -> Void) throws {
        guard !finished, input.count > 0 else { return }
        var output = [UInt8](repeating: 0, count: 64 * 1024)
        var offset = 0
        while offset < input.count && !finished {
            let consumed: Int = try input.withMemoryRebound(to: UInt8.self) { bytes in
                stream.next_in = UnsafeMutablePointer(mutating: bytes.baseAddress! + offset)
                stream.avail_in = UInt32(input.count - offset)
                let before = Int(stream.avail_in)
                repeat {
                    let (code, produced) = output.withUnsafeMutableBytes { out -> (Int32, Int) in
                        stream.next_out = out.baseAddress!.assumingMemoryBound(to: UInt8.self)
                        stream.avail_out = UInt32(out.count)
                        let code = CZlib.inflate(&stream, Z_NO_FLUSH)
                        return (code, out.count - Int(stream.avail_out))
                    }
                    if produced > 0 { output.withUnsafeBytes { emit(UnsafeRawBufferPointer(rebasing: $0[..<produced])) } }
                    if code == Z_STREAM_END { finished = true; break }
                    if code == Z_DATA_ERROR && !raw && stream.total_out == 0 {
                        // "deflate" sent without its zlib wrapper (RFC 9110 §8.4.1.2 notes servers that do).
                        inflateEnd(&stream)
                        raw = true
                        guard inflateInit2_(&stream, -15, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
                            throw HTTPParseError(502, "cannot inflate the page")
                        }
                        return 0  // start this input again, raw
                    }
                    if code != Z_OK && code != Z_BUF_ERROR { throw HTTPParseError(502, "corrupt compressed page") }
                } while stream.avail_out == 0
                return before - Int(stream.avail_in)
            }
            offset += consumed
        }
    }
}
