import ArgumentParser
import FillGuard
import FillGuardBench
import FillGuardPostgres
import FillGuardSQLite
import FillGuardSimulator
import Foundation

/// `fillguard bench`: whole-system benchmarks of FillGuard and the `seed` baseline, in one run.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmark FillGuard against the seed baseline: throughput, reaction latency, broker calls, memory, safety.",
        discussion: """
            Workloads: throughput (fills/s, zero-latency in-process broker), latency (fixed offered load, \
            fill to both protective requests handed to the broker, measured from each fill's intended send time), \
            calls (broker calls per fill, with and without 10-fill bursts), memory (RSS per idle symbol; peak RSS \
            with one hot symbol; each in a fresh process), safety (unprotected and over-covered share-seconds per \
            1,000 resizes against the simulated exchange). Those also run the seed baseline; ratios compare the two \
            within the same run. Then durable (fills/s with the write-ahead journal on SQLite, and on PostgreSQL when \
            FILLGUARD_PG_HOST, _PORT, _USER, _DATABASE name a server, plus the time to recover from it) and fix \
            (fills/s and reaction latency over FIX 4.4 to the QuickFIX test exchange, started from \
            .build/fix-peer unless --fix-port names a running one). Build with -c release.
            """)

    @Flag(help: "Run every workload tiny (about 10 to 15 seconds in all), for CI.")
    var smoke = false

    @Flag(help: "Print the results as JSON.")
    var json = false

    @Option(parsing: .unconditional, help: "Repetitions of the whole plan (medians are reported).")
    var runs: Int?

    @Option(help: "Workloads to run, comma separated: throughput,latency,calls,memory,safety,durable,fix (default: all).")
    var workloads: String?

    @Option(parsing: .unconditional, help: "Throughput: symbol counts, comma separated.")
    var symbols: String?

    @Option(parsing: .unconditional, help: "Throughput: fills per FillGuard run.")
    var fills: Int?

    @Option(parsing: .unconditional, help: "Throughput: fills per seed run.")
    var seedFills: Int?

    @Option(parsing: .unconditional, help: "Throughput at 1,000 symbols, scalein: extra windows (reports queued at most, beside 16384), comma separated (default 1000; 0: none).")
    var windows: String?

    @Option(help: "Throughput: mixes, comma separated: scalein,standard.")
    var mix: String?

    @Option(parsing: .unconditional, help: "Throughput at 1,000 symbols: broker latencies in microseconds, comma separated.")
    var latencyUs: String?

    @Option(parsing: .unconditional, help: "Latency: offered loads in fills/s, comma separated.")
    var rates: String?

    @Option(parsing: .unconditional, help: "Latency: symbols.")
    var latencySymbols: Int?

    @Option(parsing: .unconditional, help: "Latency: microseconds the dedicated row's runner thread polls before it sleeps (default 5000).")
    var dedicatedSpinUs: Int?

    @Option(parsing: .unconditional, help: "Memory: idle symbols.")
    var idleSymbols: Int?

    @Option(parsing: .unconditional, help: "Memory: fills on the hot symbol.")
    var hotFills: Int?

    @Option(help: "Durable: journal stores, comma separated: sqlite,postgres (default: sqlite, and postgres when FILLGUARD_PG_HOST is set).")
    var journalStores: String?

    @Option(help: "Durable: durability of the journal: fsync or off.")
    var durability = "fsync"

    @Option(parsing: .unconditional, help: "Durable: fills per run.")
    var durableFills: Int?

    @Option(parsing: .unconditional, help: "Durable: symbols.")
    var durableSymbols: Int?

    @Option(parsing: .unconditional, help: "Durable: records per symbol between journal snapshots.")
    var snapshotInterval: Int?

    @Option(parsing: .unconditional, help: "FIX: brackets opened at once (one per symbol).")
    var fixPositions: Int?

    @Option(parsing: .unconditional, help: "FIX: executions each entry is filled in.")
    var fixFillsPerPosition: Int?

    @Option(parsing: .unconditional, help: "FIX: brackets opened in the paced phase (0: none).")
    var fixPacedPositions: Int?

    @Option(parsing: .unconditional, help: "FIX: brackets per second in the paced phase.")
    var fixPacedRate: Int?

    @Option(parsing: .unconditional, help: "FIX: a running test exchange (auto market) on this port instead of starting one.")
    var fixPort: Int?

    @Option(help: "FIX: its host.")
    var fixHost = "127.0.0.1"

    @Option(help: "FIX: the test exchange binary to start (default: $FILLGUARD_FIX_PEER, else .build/fix-peer/fix-peer of the checkout this fillguard was built in, else of the current directory).")
    var fixPeer: String?

    @Option(help: "FIX: its FIX44.xml (default: $FILLGUARD_FIX44_XML or next to the binary).")
    var fixSpec: String?

    @Option(help: ArgumentHelp("Run one memory workload in this process and print it as JSON (used by bench itself).", visibility: .hidden))
    var child: String?

    func validate() throws {
        if let runs, runs < 1 { throw ValidationError("--runs must be at least 1") }
        if let workloads {
            if workloads.split(separator: ",").isEmpty {
                throw ValidationError("--workloads needs at least one of \(BenchPlan.allWorkloads.joined(separator: ","))")
            }
            for name in workloads.split(separator: ",") where !BenchPlan.allWorkloads.contains(String(name)) {
                throw ValidationError("unknown workload '\(name)'; known: \(BenchPlan.allWorkloads.joined(separator: ","))")
            }
        }
        if let symbols, integers(symbols) == nil { throw ValidationError("--symbols must be positive integers, comma separated") }
        if let rates, integers(rates) == nil { throw ValidationError("--rates must be positive integers, comma separated") }
        if let latencyUs, integers(latencyUs, allowZero: true) == nil { throw ValidationError("--latency-us must be integers, comma separated") }
        if let windows, integers(windows, allowZero: true) == nil { throw ValidationError("--windows must be integers, comma separated (0: none)") }
        if let mix {
            for name in mix.split(separator: ",") where Mix(rawValue: String(name)) == nil {
                throw ValidationError("unknown mix '\(name)'; known: scalein,standard")
            }
        }
        for (name, value) in [("--fills", fills), ("--seed-fills", seedFills), ("--latency-symbols", latencySymbols),
                              ("--idle-symbols", idleSymbols), ("--hot-fills", hotFills), ("--durable-fills", durableFills),
                              ("--durable-symbols", durableSymbols), ("--snapshot-interval", snapshotInterval),
                              ("--fix-positions", fixPositions), ("--fix-fills-per-position", fixFillsPerPosition)] {
            if let value, value < 1 { throw ValidationError("\(name) must be at least 1") }
        }
        if let fixPacedRate, fixPacedRate < 1 { throw ValidationError("--fix-paced-rate must be at least 1 (no paced phase: --fix-paced-positions 0)") }
        for (name, value) in [("--fix-paced-positions", fixPacedPositions), ("--dedicated-spin-us", dedicatedSpinUs)] {
            if let value, value < 0 { throw ValidationError("\(name) must not be negative") }
        }
        // Upper bounds: a count beyond them would make a position larger than a quantity may be
        // (the brackets are sized from the fills), or a run no machine finishes.
        for (name, value, limit) in [("--fills", fills, 100_000_000), ("--seed-fills", seedFills, 100_000_000),
                                     ("--hot-fills", hotFills, 100_000_000), ("--durable-fills", durableFills, 100_000_000),
                                     ("--latency-symbols", latencySymbols, 1_000_000), ("--idle-symbols", idleSymbols, 1_000_000),
                                     ("--durable-symbols", durableSymbols, 1_000_000), ("--snapshot-interval", snapshotInterval, 1_000_000_000),
                                     ("--runs", runs, 1_000), ("--dedicated-spin-us", dedicatedSpinUs, 1_000_000),
                                     ("--fix-paced-positions", fixPacedPositions, 10_000), ("--fix-paced-rate", fixPacedRate, 100_000)] {
            if let value, value > limit { throw ValidationError("\(name) must be at most \(limit)") }
        }
        for (name, list, limit) in [("--symbols", symbols, 1_000_000), ("--rates", rates, 10_000_000), ("--latency-us", latencyUs, 1_000_000)] {
            if let list, let values = integers(list, allowZero: name == "--latency-us"), values.contains(where: { $0 > limit }) {
                throw ValidationError("\(name) values must be at most \(limit)")
            }
        }
        if let fixPositions, fixPositions > 10_000 { throw ValidationError("--fix-positions must be at most 10000") }
        if let fixFillsPerPosition, fixFillsPerPosition > 1_000 { throw ValidationError("--fix-fills-per-position must be at most 1000 (the shares per entry)") }
        if let fixPort, !(1...65_535).contains(fixPort) { throw ValidationError("--fix-port must be a TCP port") }
        guard JournalDurability(rawValue: durability) != nil else { throw ValidationError("--durability must be fsync or off") }
        if let journalStores {
            for name in journalStores.split(separator: ",") where !["sqlite", "postgres"].contains(name) {
                throw ValidationError("unknown journal store '\(name)'; known: sqlite,postgres")
            }
        }
    }

    private func integers(_ text: String, allowZero: Bool = false) -> [Int]? {
        let values = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? -1) >= (allowZero ? 0 : 1) }) else { return nil }
        return values.compactMap { $0 }
    }

    func run() async throws {
        if let child {
            // A child measures for its parent only: it ends when the parent has gone (killed,
            // say), instead of running on with nobody to read its result.
            ParentWatch.watch(parent: getppid())
            guard let measurement = await BenchSuite.runChildWorkload(child.split(separator: " ").map(String.init)) else {
                writeToStandardError("fillguard bench: unknown child workload '\(child)'\n")
                throw ExitCode(2)
            }
            let data = try JSONEncoder().encode(measurement)
            try printResult(String(decoding: data, as: UTF8.self))
            return
        }
        // Every scratch file of the run (journals, FIX session stores, its children's) goes into
        // one directory of its own, removed at the end or when the run is interrupted.
        let scratch = NSTemporaryDirectory() + "fillguard-bench-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        setenv("TMPDIR", scratch + "/", 1)
        let interrupt = InterruptExit(message: "bench interrupted") { try? FileManager.default.removeItem(atPath: scratch) }
        defer {
            interrupt.release()
            try? FileManager.default.removeItem(atPath: scratch)
        }
        var plan = smoke ? BenchPlan.smoke : BenchPlan()
        if let runs { plan.runs = runs }
        if let workloads { plan.workloads = workloads.split(separator: ",").map(String.init) }
        if let symbols, let values = integers(symbols) { plan.symbols = values }
        if let fills { plan.fills = fills }
        if let seedFills { plan.seedFills = seedFills }
        if let mix { plan.mixes = mix.split(separator: ",").compactMap { Mix(rawValue: String($0)) } }
        if let windows, let values = integers(windows, allowZero: true) { plan.extraWindows = values.filter { $0 > 0 } }
        if let latencyUs, let values = integers(latencyUs, allowZero: true) { plan.latencies = values.map { .microseconds($0) } }
        if let rates, let values = integers(rates) { plan.rates = values }
        if let latencySymbols { plan.latencySymbols = latencySymbols }
        if let dedicatedSpinUs { plan.latencyDedicatedSpinMicros = dedicatedSpinUs }
        if let idleSymbols { plan.idleSymbols = idleSymbols }
        if let hotFills { plan.hotFills = hotFills }
        if let durableFills { plan.durableFills = durableFills }
        if let durableSymbols { plan.durableSymbols = durableSymbols }
        if let snapshotInterval { plan.snapshotInterval = snapshotInterval }
        if plan.workloads.contains("durable") { plan.durableStores = try durableStores() }
        if let fixPositions { plan.fix.positions = fixPositions }
        if let fixFillsPerPosition { plan.fix.fillsPerPosition = fixFillsPerPosition }
        if let fixPacedPositions { plan.fix.pacedPositions = fixPacedPositions }
        if let fixPacedRate { plan.fix.pacedRate = fixPacedRate }
        if let fixPort { plan.fix.endpoint = (fixHost, fixPort) }
        plan.fix.peer = fixPeer
        plan.fix.spec = fixSpec
        if plan.workloads.contains("fix"), fixPort == nil {
            let binary = FIXTestExchange.binary(fixPeer)
            let spec = FIXTestExchange.dictionary(fixSpec, binary: binary)
            if !FIXTestExchange.isAvailable(binary: binary, spec: spec) {
                let missing = FileManager.default.isExecutableFile(atPath: binary)
                    ? "its data dictionary is not at \(spec)" : "the QuickFIX test exchange is not at \(binary)"
                // Asked for by name, it is an error; as part of the default set it is left out, and said so.
                guard workloads == nil else {
                    writeToStandardError("fillguard bench: the fix workload cannot run: \(missing); build it with scripts/fix-peer build, give --fix-peer, --fix-spec or --fix-port, or leave fix out of --workloads\n")
                    throw ExitCode(2)
                }
                writeToStandardError("fillguard bench: fix left out: \(missing) (build it with scripts/fix-peer build, or give --fix-peer or --fix-port)\n")
                plan.workloads.removeAll { $0 == "fix" }
            }
        }
        let suite = BenchSuite(plan: plan, childCommand: ["/proc/self/exe", "bench", "--child"]) { line in
            writeToStandardError(line + "\n")
        }
        let results = await suite.run()
        try printResult(json ? results.json : results.text)
        // A run that found wrong state, or could not measure what was asked, must not look like a pass.
        let failures = results.runs.joined().filter { measurement in
            measurement.metrics.isEmpty && measurement.notes.contains { $0.hasPrefix(BenchSuite.childFailed) }
                || measurement.implementation == "fillguard" && ((measurement.metrics["violations"] ?? 0) > 0 || measurement.metrics.isEmpty)
        }
        for failure in failures {
            writeToStandardError("fillguard bench: \(failure.workload) \(failure.implementation): \(failure.metrics.isEmpty ? "" : "invariant violations: ")\(failure.notes.joined(separator: "; "))\n")
        }
        if !failures.isEmpty { throw ExitCode(1) }
    }
}

extension BenchCommand {
    /// The stores the durable workload measures: SQLite in the temporary directory, and
    /// PostgreSQL on the server FILLGUARD_PG_* name (each run in a namespace of its own).
    private func durableStores() throws -> [DurableStore] {
        let mode = JournalDurability(rawValue: durability) ?? .fsync
        let environment = ProcessInfo.processInfo.environment
        let names = journalStores.map { $0.split(separator: ",").map(String.init) }
            ?? (environment["FILLGUARD_PG_HOST"].map { !$0.isEmpty } == true ? ["sqlite", "postgres"] : ["sqlite"])
        var stores: [DurableStore] = []
        if names.contains("sqlite") {
            let directory = FileManager.default.temporaryDirectory.path
            stores.append(DurableStore(
                name: "sqlite", durability: mode,
                newLocation: { directory + "/fillguard-bench-\(UUID().uuidString).sqlite" },
                open: { path throws(JournalError) in try SQLiteJournalStore(path: path, durability: mode) },
                remove: { path in for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }))
        }
        if names.contains("postgres") {
            let required = ["FILLGUARD_PG_HOST", "FILLGUARD_PG_PORT", "FILLGUARD_PG_USER", "FILLGUARD_PG_DATABASE"]
            let missing = required.filter { (environment[$0] ?? "").isEmpty }
            guard missing.isEmpty, let port = Int(environment["FILLGUARD_PG_PORT"] ?? "") else {
                // Said plainly, without the usage text a ValidationError from here would print (the top command's).
                writeToStandardError("fillguard bench: the postgres journal store needs \(missing.isEmpty ? "FILLGUARD_PG_PORT as a number" : missing.joined(separator: ", ")); start a server with: eval \"$(scripts/postgres-start)\"\n")
                throw ExitCode(2)
            }
            let base = PostgresJournalStore.Configuration(
                host: environment["FILLGUARD_PG_HOST"]!, port: port, username: environment["FILLGUARD_PG_USER"]!,
                password: environment["FILLGUARD_PG_PASSWORD"], database: environment["FILLGUARD_PG_DATABASE"]!,
                namespace: "bench", durability: mode)
            @Sendable func configuration(_ namespace: String) -> PostgresJournalStore.Configuration {
                var configuration = base
                configuration.namespace = namespace
                return configuration
            }
            stores.append(DurableStore(
                name: "postgres", durability: mode,
                newLocation: { "bench-\(UUID().uuidString.lowercased())" },
                open: { namespace throws(JournalError) in try await PostgresJournalStore(configuration: configuration(namespace)) },
                remove: { namespace in
                    guard let store = try? await PostgresJournalStore(configuration: configuration(namespace)) else { return }
                    try? await store.erase()
                    await store.close()
                }))
        }
        return stores
    }
}

/// `fillguard profile-core N` (hidden): the single-threaded core loop on the main thread, with
/// no tasks at all, so that valgrind's instrumenting tools (which crash on the runtime's worker
/// threads here) can count its instructions.
struct ProfileCoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile-core", abstract: "Run the core per-fill loop synchronously (for valgrind).", shouldDisplay: false)

    @Argument(help: "Scale-in fills to book.")
    var fills = 100_000

    func run() throws {
        let measurement = CoreWorkload.run(fills: max(1, fills))
        let data = try JSONEncoder().encode(measurement)
        try printResult(String(decoding: data, as: UTF8.self))
    }
}
