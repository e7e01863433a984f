import FillGuard
import FillGuardCore
import FillGuardFIX
import FillGuardSimulator
import Foundation

/// Throughput and reaction latency over FIX 4.4 to the QuickFIX test exchange (tools/fix-peer in
/// auto-market mode, started here unless an endpoint is given): `FIXBench` in a burst (every
/// bracket opened at once), the same burst with a `FileFIXSessionStore` (what keeping sequence
/// numbers, sent messages and received fills on disk costs) and with a synchronous one (fsync
/// before each sequence number: what surviving a power loss costs), and paced (brackets opened at a
/// fixed rate, for the latencies of an unsaturated system). Each run is checked against the
/// exchange's OrderMassStatus.
public enum FIXWorkload {
    /// What the workload does and where the exchange is.
    public struct Options: Sendable {
        /// Brackets opened at once in the burst, one per symbol.
        public var positions = 2_000
        /// Executions each market entry is filled in (the started exchange's --market-fills).
        public var fillsPerPosition = 10
        /// Shares per entry.
        public var quantity = 1_000
        /// Brackets opened in the paced phase (0: no paced phase).
        public var pacedPositions = 300
        /// Brackets per second in the paced phase.
        public var pacedRate = 100
        /// Runs the burst again with a session store on disk (phase `burst-file-store`), and with
        /// a synchronous one (`burst-file-store-sync`).
        public var fileStorePhase = true
        /// A running exchange (auto-market, with --market-fills) instead of starting one.
        public var endpoint: (host: String, port: Int)?
        /// The test exchange binary to start (nil: $FILLGUARD_FIX_PEER or .build/fix-peer/fix-peer).
        public var peer: String?
        /// Its FIX44.xml (nil: $FILLGUARD_FIX44_XML or next to the binary).
        public var spec: String?

        /// The defaults: 2,000 brackets of 1,000 shares, each entry filled in 10 executions, then 300 at 100/s.
        public init() {}
    }

    /// Runs the burst and, if asked, the paced phase once; a failure to reach the exchange is one
    /// measurement with no metrics and a note saying why.
    public static func run(_ options: Options) async -> [Measurement] {
        var started: FIXTestExchange?
        let host: String
        let port: Int
        if let endpoint = options.endpoint {
            (host, port) = endpoint
        } else {
            let binary = FIXTestExchange.binary(options.peer)
            do {
                let exchange = try FIXTestExchange.launch(
                    binary: binary, spec: FIXTestExchange.dictionary(options.spec, binary: binary),
                    arguments: ["--auto-market", "1", "--market-fills", String(options.fillsPerPosition), "--quiet", "--no-log"])
                started = exchange
                host = "127.0.0.1"
                port = exchange.port
            } catch {
                return [failed("burst", options, "\(error)")]
            }
        }
        defer { started?.stop() }
        var settings = FIXSettings()
        settings.host = host
        settings.port = port
        var bench = FIXBenchOptions(settings: settings)
        bench.positions = options.positions
        bench.quantity = Quantity(options.quantity)
        var results: [Measurement] = []
        do {
            results.append(measurement("burst", options, try await FIXBench.run(bench)))
        } catch {
            return [failed("burst", options, "\(error)")]
        }
        if options.fileStorePhase {
            results.append(await fileStoreBurst(bench, options, synchronous: false))
            results.append(await fileStoreBurst(bench, options, synchronous: true))
        }
        if options.pacedPositions > 0, options.pacedRate > 0 {
            bench.positions = options.pacedPositions
            bench.positionsPerSecond = options.pacedRate
            bench.runID = FIXSimulationOptions.makeRunID()
            do {
                results.append(measurement("paced", options, try await FIXBench.run(bench)))
            } catch {
                results.append(failed("paced", options, "\(error)"))
            }
        }
        return results
    }

    /// The burst again, with a new `FileFIXSessionStore` in a directory of its own (removed after):
    /// every message sent is logged, every sequence number change rewrites `seqnums`, every fill
    /// received is appended to `executions`; `synchronous`: with fsync before each sequence number
    /// recorded. The store is new, so the Logon resets the sequences.
    private static func fileStoreBurst(_ bench: FIXBenchOptions, _ options: Options, synchronous: Bool) async -> Measurement {
        let phase = synchronous ? "burst-file-store-sync" : "burst-file-store"
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fillguard-bench-fix-store-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        var stored = bench
        stored.settings.storePath = directory.path
        stored.settings.resetOnLogon = true
        stored.settings.storeSync = synchronous
        stored.runID = FIXSimulationOptions.makeRunID()
        do {
            return measurement(phase, options, try await FIXBench.run(stored))
        } catch {
            return failed(phase, options, "\(error)")
        }
    }

    private static func parameters(_ phase: String, _ options: Options) -> [String: String] {
        var parameters = ["phase": phase, "fillsPerPosition": "\(options.fillsPerPosition)", "quantity": "\(options.quantity)"]
        if phase == "paced" {
            parameters["positions"] = "\(options.pacedPositions)"
            parameters["rate"] = "\(options.pacedRate)/s"
        } else {
            parameters["positions"] = "\(options.positions)"
        }
        return parameters
    }

    private static func measurement(_ phase: String, _ options: Options, _ result: FIXBenchResult) -> Measurement {
        var metrics: [String: Double] = [
            "fills": Double(result.fills),
            "fillsPerSecond": Double(result.fillsPerSecond),
            "reactionP50Micros": Double(result.reaction.p50),
            "reactionP99Micros": Double(result.reaction.p99),
            "reactionMaxMicros": Double(result.reaction.max),
            "protectionP50Micros": Double(result.protection.p50),
            "protectionP99Micros": Double(result.protection.p99),
            "protectionMaxMicros": Double(result.protection.max),
            "retries": Double(result.retries),
            "violations": Double(result.violations.count),
        ]
        let operations = result.operations.values.reduce(0, +)
        metrics["brokerCallsPerFill"] = Double(operations) / Double(max(1, result.fills))
        return Measurement(workload: "fix", implementation: "fillguard", parameters: parameters(phase, options), metrics: metrics,
                           notes: result.violations.prefix(20).map { "violation: \($0)" })
    }

    private static func failed(_ phase: String, _ options: Options, _ reason: String) -> Measurement {
        Measurement(workload: "fix", implementation: "fillguard", parameters: parameters(phase, options), metrics: [:],
                    notes: ["not measured: \(reason)"])
    }
}
