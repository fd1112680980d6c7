import IdlegateBase

/// How a message body is delimited (RFC 9112 §6).
public enum BodyFraming: Sendable, Equatable {
    /// No body at all.
    case none
    /// Exactly this many bytes (Content-Length).
    case length(Int64)
    /// Transfer-Encoding: chunked.
    case chunked
    /// Until the server closes the connection (responses only, §6.3 rule 8: HTTP/1.0 servers).
    case untilClose
}

extension BodyFraming {
    /// The framing the fields declare, one rule set for requests and responses (RFC 9112 §6.1, §6.3, and
    /// the smuggling shapes of §11.2): Transfer-Encoding only as a single `chunked` (`otherCoding` is
    /// the status for any other coding), never with Content-Length, never in HTTP/1.0; one Content-Length
    /// of plain digits. Nil when neither field is present.
    static func declared(_ fields: HTTPFields, version: HTTPVersion, message: String, otherCoding: Int) throws(HTTPParseError) -> BodyFraming? {
        let te = fields.occurrences(of: .transferEncoding)
        let cl = fields.occurrences(of: .contentLength)
        if te.count > 0 {
            // §6.1: a server MAY reject TE with CL; both present is the classic smuggling shape.
            if cl.count > 0 { throw .bad("Transfer-Encoding together with Content-Length") }
            // §6.1: TE in an HTTP/1.0 message means the message is faulty.
            if version == .http10 { throw .bad("Transfer-Encoding in an HTTP/1.0 \(message)") }
            guard te.count == 1 else { throw .bad("more than one Transfer-Encoding field") }
            let codings = fields.value(at: te.first).split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingOWS() }
            guard codings.count == 1, codings[0].lowercased() == "chunked" else {
                if codings.contains(where: { $0.isEmpty }) { throw .bad("malformed Transfer-Encoding") }
                throw HTTPParseError(otherCoding, "transfer coding other than chunked")
            }
            return .chunked
        }
        if cl.count == 0 { return nil }
        // §6.3 rule 5: several or list-valued Content-Length fields are refused, even when equal.
        guard cl.count == 1 else { throw .bad("more than one Content-Length field") }
        let n = try RequestHead.contentLength(fields.valueBytes(at: cl.first))
        return n == 0 ? BodyFraming.none : .length(n)  // spelled out: a bare .none here would be Optional.none
    }
}

extension RequestHead {
    /// The request's body framing, refusing every ambiguous shape (RFC 9112 §6.1–§6.3, and the request
    /// smuggling cases of §11.2). Odoo accepts no transfer coding but chunked, so anything else is 501.
    public func framing(limits: HTTPLimits) throws(HTTPParseError) -> BodyFraming {
        guard let f = try BodyFraming.declared(fields, version: version, message: "request", otherCoding: 501) else { return .none }
        if case .length(let n) = f, n > limits.body { throw HTTPParseError(413, "request body larger than the limit") }
        return f
    }

    /// 1*DIGIT, at most 18 of them (no sign, no spaces, no commas, no overflow).
    static func contentLength(_ bytes: ArraySlice<UInt8>) throws(HTTPParseError) -> Int64 {
        guard !bytes.isEmpty else { throw .bad("empty Content-Length") }
        guard bytes.count <= 18 else { throw HTTPParseError(413, "Content-Length too large") }
        var n: Int64 = 0
        for b in bytes {
            guard b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") else { throw .bad("invalid Content-Length") }
            n = n * 10 + Int64(b - UInt8(ascii: "0"))
        }
        return n
    }

    /// Whether the client asked for `100 Continue` before sending its body (RFC 9110 §10.1.1).
    public var expectsContinue: Bool {
        version == .http11 && fields.contains(.expect) && fields.values(.expect).contains { $0.lowercased() == "100-continue" }
    }
}

extension ResponseHead {
    /// The response's body framing (RFC 9112 §6.3), as strict as for requests: an upstream that sends
    /// a smuggling shape gets its response refused (502), never relayed.
    public func framing(requestMethod: String) throws(HTTPParseError) -> BodyFraming {
        // §6.3 rule 1: no body after HEAD, and none in 1xx, 204, 304.
        if requestMethod == "HEAD" || (100..<200).contains(status) || status == 204 || status == 304 {
            return .none
        }
        // An upstream's other transfer coding is as malformed as any other framing error here (502).
        return try BodyFraming.declared(fields, version: version, message: "response", otherCoding: 400) ?? .untilClose
    }
}
