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
        .executable(name: "fillguard", targets: ["fillguard"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
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
        // The simulated exchange: a Broker with price paths, latency and fault injection.
        .target(
            name: "FillGuardSimulator",
            dependencies: [
                "FillGuard", "FillGuardCore",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Benchmark workloads (throughput, reaction latency, broker calls, memory, safety) and the
        // `seed` baseline that reproduces the Python original, shared by `fillguard bench`.
        .target(
            name: "FillGuardBench",
            dependencies: [
                "FillGuard", "FillGuardCore", "FillGuardSimulator",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "fillguard",
            dependencies: [
                "FillGuard", "FillGuardCore", "FillGuardSimulator", "FillGuardBench",
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
            name: "FillGuardTests",
            dependencies: [
                "FillGuard", "FillGuardCore", "FillGuardSimulator", "FillGuardBench",
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["Traces"],
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
