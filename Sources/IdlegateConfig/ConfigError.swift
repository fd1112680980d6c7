/// A config problem, named by the key's path: `timeouts.client_header: "10 parsecs" is not a duration`.
public struct ConfigError: Error, CustomStringConvertible, Equatable, Sendable {
    public let key: String
    public let problem: String
    /// Where the value came from when not the file: an `IDLEGATE_…` variable or a `--flag`.
    public let source: String?

    public init(_ key: String, _ problem: String, source: String? = nil) {
        self.key = key
        self.problem = problem
        self.source = source
    }

    public var description: String {
        (key.isEmpty ? problem : "\(key): \(problem)") + (source.map { " (from \($0))" } ?? "")
    }
}
