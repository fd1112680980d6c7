import IdlegateBase
@testable import IdlegateHTTP

/// Parses `text` as one request head, all at once; nil while incomplete.
func parseRequest(_ text: String, limits: HTTPLimits = HTTPLimits()) throws -> (RequestHead, Int)? {
    try parseHead(Array(text.utf8), kind: .request, limits: limits).map { r in
        guard case .request(let h, let n) = r else { fatalError() }
        return (h, n)
    }
}

func parseResponse(_ text: String, limits: HTTPLimits = HTTPLimits()) throws -> (ResponseHead, Int)? {
    try parseHead(Array(text.utf8), kind: .response, limits: limits).map { r in
        guard case .response(let h, let n) = r else { fatalError() }
        return (h, n)
    }
}

func parseHead(_ bytes: [UInt8], kind: HeadParser.Kind, limits: HTTPLimits) throws -> HeadParser.Result? {
    var p = HeadParser(kind: kind, limits: limits)
    let r = try bytes.withUnsafeBytes { try p.parse($0) }
    return r == .incomplete ? nil : r
}

/// Feeds the bytes one at a time, as the slowest network would, and returns the final result.
func parseRequestByteByByte(_ text: String) throws -> (RequestHead, Int)? {
    var p = HeadParser(kind: .request, limits: HTTPLimits())
    let bytes = Array(text.utf8)
    for end in 1...bytes.count {
        let r = try bytes[0..<end].withUnsafeBytes { try p.parse($0) }
        if case .request(let h, let n) = r { return (h, n) }
    }
    return nil
}

/// The status a request head is refused with (parse, then framing), or nil if it is accepted.
func refusal(_ text: String, limits: HTTPLimits = HTTPLimits()) -> Int? {
    do {
        guard let (head, _) = try parseRequest(text, limits: limits) else { return nil }
        _ = try head.framing(limits: limits)
        return nil
    } catch {
        return (error as? HTTPParseError)?.status ?? -1
    }
}

/// Decodes a whole body given in `pieces` (to exercise every split point); returns the data.
func decodeBody(_ framing: BodyFraming, _ pieces: [[UInt8]], limits: HTTPLimits = HTTPLimits()) throws -> (data: [UInt8], done: Bool, leftover: Int) {
    var d = BodyDecoder(framing, limits: limits)
    var out: [UInt8] = []
    var leftover = 0
    for piece in pieces {
        let used = try piece.withUnsafeBytes { b in try d.decode(b) { out.append(contentsOf: $0) } }
        leftover += piece.count - used
    }
    return (out, d.isDone, leftover)
}

extension String {
    var bytes: [UInt8] { Array(utf8) }
}
