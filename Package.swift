// swift-tools-version:6.0
import PackageDescription

// Dependencies, and why each one is here (the README repeats this):
// - swift-argument-parser: the `idlegate` command line (sub-commands, --help, --version).
// - swift-log: the logging API; idlegate installs its own one-line stderr handler.
// - Yams: reads the YAML config file (libyaml inside, no other dependency).
// - swift-metrics: the metrics API the proxy counts through (the Swift server ecosystem's standard).
// - swift-prometheus: the exporter behind the admin API's /metrics (swift-metrics + swift-atomics).
// None of them pulls in SwiftNIO.
// Release builds of the hot path check exclusive access statically only: the dynamic checks (a
// thread-local access set touched on every mutation of a class's stored property) cost ~4 k instructions
// per proxied request, and the debug, ASan and TSan builds the tests run keep them. They are also
// optimised across modules (the codec's small functions inlined into the proxy: ~0.8 k per request).
let hotPath: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked", "-cross-module-optimization"], .when(configuration: .release))]

let package = Package(
    name: "idlegate",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "idlegate", targets: ["idlegate"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.1.0"),
    ],
    targets: [
        // C shims for what Swift's Glibc module does not export (epoll, eventfd, signal masks).
        .target(name: "CSystem"),
        // The one lock, the one clock, threads: what every layer shares. No I/O.
        .target(name: "IdlegateBase"),
        // Sockets, addresses, the epoll event loop and the byte-stream Transport. No HTTP.
        .target(name: "IdlegateIO", dependencies: ["CSystem", "IdlegateBase"], swiftSettings: hotPath),
        // OpenSSL (Debian libssl-dev): HMAC-SHA256 for session keys, random secrets; TLS later.
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        // The pure HTTP/1.1 codec: heads, ordered fields, framing, limits, cookies. No sockets.
        // TLS through OpenSSL: the listener's certificates (SNI, resumption) and upstreams over https, as
        // a transport under the same event loop.
        .target(name: "IdlegateTLS", dependencies: ["COpenSSL", "IdlegateBase", "IdlegateIO"]),
        .target(name: "IdlegateHTTP", dependencies: ["IdlegateBase"], swiftSettings: hotPath),
        // The shared session store for replicas: a RESP client on its own event loop thread (plain, TLS
        // or a unix socket) and the Redis layer behind the SessionStore protocol.
        .target(name: "IdlegateRedis", dependencies: ["COpenSSL", "IdlegateBase", "IdlegateIO", "IdlegateTLS", "IdlegateSessions"]),
        // Pure: session id shape, key derivation, the secret and the state directory, the store protocol,
        // the lock-striped table, the snapshot.
        .target(name: "IdlegateSessions", dependencies: ["COpenSSL", "IdlegateBase"], swiftSettings: hotPath),
        // Pure: policies and their matchers, route classes, expiry responses, cookie hardening.
        .target(name: "IdlegatePolicy", dependencies: ["IdlegateBase", "IdlegateHTTP", "IdlegateSessions"], swiftSettings: hotPath),
        // The config model, YAML + flags, validation with key paths.
        .target(name: "IdlegateConfig", dependencies: [
            "IdlegateBase",
            .product(name: "Yams", package: "Yams"),
        ]),
        // The flow: client connection state machine, routing, upstream pool, tunnels, error funnel.
        .target(name: "IdlegateProxy", dependencies: [
            "CZlib", "IdlegateBase", "IdlegateIO", "IdlegateTLS", "IdlegateHTTP", "IdlegateConfig", "IdlegateSessions", "IdlegatePolicy", "IdlegateAudit",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
        ], swiftSettings: hotPath),
        // The admin listener: health, readiness, metrics, sessions, kick, reload. Never proxies.
        .target(name: "IdlegateAdmin", dependencies: ["IdlegateBase", "IdlegateIO", "IdlegateHTTP", "IdlegateSessions"]),
        // zlib (Debian zlib1g-dev): gzip for rotated audit logs and for reading them back.
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // `idlegate reap`: cleans Odoo's file session store, matched to idlegate's state by session key.
        .target(name: "IdlegateReaper", dependencies: ["IdlegateBase", "IdlegateSessions"]),
        // The audit trail: events, the writer queue, file sink, rotation, gzip, the report.
        .target(name: "IdlegateAudit", dependencies: ["CZlib", "IdlegateBase"]),
        // The executable: CLI, signals, wiring.
        .executableTarget(name: "idlegate", dependencies: [
            "IdlegateBase", "IdlegateProxy", "IdlegateConfig", "IdlegateIO", "IdlegateTLS", "IdlegateRedis", "IdlegateAdmin", "IdlegateSessions", "IdlegateAudit", "IdlegateReaper",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        // The session table's own benchmark (touches/s, bytes per session).
        .executableTarget(name: "table-bench", dependencies: ["IdlegateBase", "IdlegateSessions"], path: "Benchmarks/TableBench"),
        // The differential cookie test's oracle: idlegate's own cookie decision for header sets on
        // stdin, which the test then reads back with every werkzeug version Odoo ships with.
        .executableTarget(name: "cookie-oracle", dependencies: ["IdlegateBase", "IdlegateHTTP", "IdlegateSessions"], path: "Tests/CookieOracle"),
        .testTarget(name: "IdlegateIOTests", dependencies: ["IdlegateBase", "IdlegateIO"]),
        .testTarget(name: "IdlegateTLSTests", dependencies: ["IdlegateBase", "IdlegateIO", "IdlegateTLS"]),
        .testTarget(name: "IdlegateHTTPTests", dependencies: ["IdlegateBase", "IdlegateHTTP"]),
        .testTarget(name: "IdlegateConfigTests", dependencies: ["IdlegateBase", "IdlegateConfig"]),
        // The cases every SessionStore must pass (the memory table now, the Redis layer later), and a
        // store that confirms later on another thread, as the Redis layer will.
        .target(name: "StoreConformance", dependencies: ["IdlegateBase", "IdlegateSessions"], path: "Tests/StoreConformance"),
        .testTarget(name: "IdlegateSessionsTests", dependencies: ["IdlegateBase", "IdlegateSessions", "StoreConformance"]),
        .testTarget(name: "IdlegateRedisTests", dependencies: ["IdlegateBase", "IdlegateIO", "IdlegateSessions", "IdlegateRedis", "StoreConformance"]),
        .testTarget(name: "IdlegateAuditTests", dependencies: ["IdlegateBase", "IdlegateAudit"]),
        .testTarget(name: "IdlegateReaperTests", dependencies: ["IdlegateBase", "IdlegateReaper", "IdlegateSessions"]),
        .testTarget(name: "IdlegateAdminTests", dependencies: ["IdlegateAdmin", "IdlegateBase", "IdlegateSessions", "IdlegateHTTP"]),
        .testTarget(name: "IdlegateProxyTests", dependencies: [
            "IdlegateProxy", "IdlegateBase", "IdlegateConfig", "IdlegateHTTP", "IdlegateIO", "IdlegatePolicy", "IdlegateSessions", "IdlegateAudit",
            "StoreConformance", .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "IdlegatePolicyTests", dependencies: ["IdlegateBase", "IdlegatePolicy", "IdlegateHTTP", "IdlegateSessions"]),
    ],
    swiftLanguageModes: [.v6]
)

// Fuzz targets (`Fuzz/run`): built only when IDLEGATE_FUZZ is set, with `--sanitize=fuzzer
// --sanitize=address`, since libFuzzer provides their `main`.
if Context.environment["IDLEGATE_FUZZ"] != nil {
    let fuzz: [(String, String, [Target.Dependency])] = [
        ("fuzz-request-head", "request-head", ["IdlegateBase", "IdlegateHTTP"]),
        ("fuzz-response-head", "response-head", ["IdlegateHTTP"]),
        ("fuzz-chunked", "chunked", ["IdlegateBase", "IdlegateHTTP"]),
        ("fuzz-cookie", "cookie", ["IdlegateBase", "IdlegateHTTP", "IdlegateSessions"]),
        ("fuzz-websocket-frames", "websocket-frames", ["IdlegateHTTP"]),
        ("fuzz-snapshot", "snapshot", ["IdlegateSessions"]),
        ("fuzz-audit-line", "audit-line", ["IdlegateAudit"]),
        ("fuzz-config", "config", ["IdlegateConfig"]),
        ("fuzz-resp", "resp", ["IdlegateRedis"]),
    ]
    package.targets.append(.target(name: "FuzzSupport", dependencies: ["IdlegateBase", "IdlegateHTTP"], path: "Fuzz/Support"))
    for (name, folder, deps) in fuzz {
        package.targets.append(.executableTarget(name: name, dependencies: ["FuzzSupport"] + deps, path: "Fuzz/\(folder)",
                                                 swiftSettings: [.unsafeFlags(["-parse-as-library"])]))
    }
}
