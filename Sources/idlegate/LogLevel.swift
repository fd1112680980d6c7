import IdlegateConfig
import Logging
import Synchronization

/// idlegate's one log level, for every logger, changed by a reload (swift-log allows a global
/// override: "a change in log level on a particular LogHandler might not be reflected").
enum LogLevel {
    private static let current = Atomic<UInt8>(UInt8(Logger.Level.allCases.firstIndex(of: .info)!))

    static var level: Logger.Level {
        get { Logger.Level.allCases[Int(current.load(ordering: .relaxed))] }
        set { current.store(UInt8(Logger.Level.allCases.firstIndex(of: newValue)!), ordering: .relaxed) }
    }
}

/// Lines to stderr (swift-log's stream handler), at the level `LogLevel` holds now.
struct ReloadableLevelHandler: LogHandler {
    var inner: StreamLogHandler

    var logLevel: Logger.Level {
        get { LogLevel.level }
        set { LogLevel.level = newValue }
    }

    var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) { inner.log(event: event) }
}

extension Logger.Level {
    init(_ level: Config.LogLevel) {
        switch level {
        case .debug: self = .debug
        case .info: self = .info
        case .warning: self = .warning
        case .error: self = .error
        }
    }
}
