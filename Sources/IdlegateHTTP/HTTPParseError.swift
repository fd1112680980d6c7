/// Why a message was refused, and the status the client gets for it. Requests get exactly this status
/// and a closed connection; a malformed upstream response becomes a 502 instead.
public struct HTTPParseError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The response status for a request that fails this way.
    public let status: Int
    /// A short reason for the log line (never echoed with message bytes in it).
    public let reason: String

    public init(_ status: Int, _ reason: String) {
        self.status = status
        self.reason = reason
    }

    public var description: String { "\(status) \(reason)" }

    static func bad(_ reason: String) -> HTTPParseError { HTTPParseError(400, reason) }
}
