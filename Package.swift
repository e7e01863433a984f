// swift-tools-version: 6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
]

let package = Package(
    name: "FillGuard",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "FillGuardCore", targets: ["FillGuardCore"]),
        .library(name: "FillGuard", targets: ["FillGuard"]),
        .library(name: "FillGuardSimulator", targets: ["FillGuardSimulator"]),
        .library(name: "FillGuardSQLite", targets: ["FillGuardSQLite"]),
        .library(name: "FillGuardFIX", targets: ["FillGuardFIX"]),
        .executable(name: "fillguard", targets: ["fillguard"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // The rules: a pure, synchronous, deterministic state machine. No tasks, clocks or I/O.
        .target(
            name: "FillGuardCore",
            dependencies: [],
            swiftSettings: strict
        ),
        // The runtime: per-symbol lanes, operation dispatch, retries, breaker, rate limit, metrics, events.
        .target(
            name: "FillGuard",
            dependencies: [
                "FillGuardCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            swiftSettings: strict
        ),
        // The simulated exchange (a Broker with price paths, latency and fault injection) and the simulate/bench sessions, also over FIX.
        .target(
            name: "FillGuardSimulator",
            dependencies: [
                "FillGuard", "FillGuardCore", "FillGuardFIX",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The embedded journal store: SQLite in WAL mode through GRDB.
        .target(
            name: "FillGuardSQLite",
            dependencies: [
                "FillGuard", "FillGuardCore",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strict
        ),
        // FIX 4.4: tag=value codec, pure session state machine, order mapping, and the Broker adapter.
        .target(
            name: "FillGuardFIX",
            dependencies: [
                "FillGuard", "FillGuardCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "fillguard",
            dependencies: [
                "FillGuard", "FillGuardCore", "FillGuardSimulator", "FillGuardSQLite", "FillGuardFIX",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "FillGuardCoreTests",
            dependencies: [
                "FillGuardCore", "FillGuard",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "FillGuardJournalTests",
            dependencies: [
                "FillGuard", "FillGuardCore", "FillGuardSimulator", "FillGuardSQLite",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "FillGuardTests",
            dependencies: [
                "FillGuard", "FillGuardCore", "FillGuardSimulator",
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["Traces"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "FillGuardFIXTests",
            dependencies: ["FillGuardFIX", "FillGuard", "FillGuardCore", "FillGuardSimulator"],
            swiftSettings: strict
        ),
    ]
)
