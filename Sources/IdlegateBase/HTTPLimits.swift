/// Size limits on what a peer may send, each with the status crossing it gets: the HTTP codec enforces
/// them, the config sets them (so they live on the floor both stand on).
public struct HTTPLimits: Sendable, Equatable {
    /// Longest request line (method, target, version) in bytes → 414. Default 8 KiB, as nginx's
    /// `large_client_header_buffers`; Odoo's longest URLs (asset bundles, `redirect=`) stay far below.
    public var requestLine: Int = 8 * 1024
    /// Most bytes in a whole head, request line included → 431. Default 64 KiB.
    public var headerBytes: Int = 64 * 1024
    /// Most header fields in one head → 431. Default 100, as Go's and Apache's limits.
    public var headerCount: Int = 100
    /// Largest request body → 413. Default 128 MiB: Odoo attachments and imports fit.
    public var body: Int64 = 128 * 1024 * 1024
    /// Longest chunk-size line, extensions included, and longest trailer line → 400. Default 4 KiB.
    public var chunkLine: Int = 4 * 1024

    public init() {}
}
