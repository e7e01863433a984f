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
        .library(name: "FillGuardPostgres", targets: ["FillGuardPostgres"]),
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
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
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
                .product(name: "Metrics", package: "swift-metrics"),
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
        // The shared journal store: PostgreSQL through postgres-nio, for several processes or machines.
        .target(
            name: "FillGuardPostgres",
            dependencies: [
                "FillGuard", "FillGuardCore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The contract every JournalStore passes, shared by the journal test targets (not shipped).
        .target(
            name: "FillGuardJournalContract",
            dependencies: ["FillGuard", "FillGuardCore"],
            path: "Tests/FillGuardJournalContract",
            swiftSettings: strict
        ),
        // Durable append throughput of the PostgreSQL store (records/s) against FILLGUARD_PG_*.
        .executableTarget(
            name: "fillguard-postgres-bench",
            dependencies: ["FillGuard", "FillGuardPostgres"],
            swiftSettings: strict
        ),
        // Benchmark workloads (throughput, reaction latency, broker calls, memory, safety) and the
        // `seed` baseline that reproduces the Python original, shared by `fillguard bench`.
        .target(
            name: "FillGuardBench",
            dependencies: [
                "FillGuard", "FillGuardCore", "FillGuardSimulator", "FillGuardFIX",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "fillguard",
            dependencies: [
                "FillGuard", "FillGuardCore", "FillGuardSimulator", "FillGuardSQLite", "FillGuardPostgres", "FillGuardBench", "FillGuardFIX",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
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
                "FillGuard", "FillGuardCore", "FillGuardSimulator", "FillGuardSQLite", "FillGuardJournalContract",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strict
        ),
        // The contract suite against a real PostgreSQL server (scripts/postgres-start); separate so
        // that the other test targets do not wait for postgres-nio's build.
        .testTarget(
            name: "FillGuardPostgresTests",
            dependencies: [
                "FillGuard", "FillGuardCore", "FillGuardPostgres", "FillGuardJournalContract",
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "FillGuardTests",
            dependencies: [
                "FillGuard", "FillGuardCore", "FillGuardSimulator", "FillGuardBench",
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            exclude: ["Traces"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "FillGuardFIXTests",
            dependencies: ["FillGuardFIX", "FillGuard", "FillGuardCore", "FillGuardSimulator", "FillGuardSQLite"],
            swiftSettings: strict
        ),
    ]
)

// The package-benchmark suite (Benchmarks/) is opt-in: FILLGUARD_BENCHMARKS=1 swift package benchmark.
// Without the variable the benchmark package is neither resolved nor built, so `swift build
// --build-tests` (CI, scripts/test) does not pay for it (it more than doubled a clean test build).
if Context.environment["FILLGUARD_BENCHMARKS"] != nil {
    // Only the malloc interposer trait: the default runtime-interposer trait needs a package this
    // toolchain's package set does not have.
    package.dependencies.append(.package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]))
    package.targets.append(
        .executableTarget(
            name: "FillGuardBenchmarks",
            dependencies: [
                "FillGuard", "FillGuardCore", "FillGuardBench",
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/FillGuardBenchmarks",
            swiftSettings: strict,
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    )
}
