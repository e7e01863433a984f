import ArgumentParser
import FillGuardBench
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
            1,000 resizes against the simulated exchange). Every workload also runs the seed baseline; ratios \
            compare the two within the same run. Build with -c release.
            """)

    @Flag(help: "Run every workload tiny (a few seconds in all), for CI.")
    var smoke = false

    @Flag(help: "Print the results as JSON.")
    var json = false

    @Option(help: "Repetitions of the whole plan (medians are reported).")
    var runs: Int?

    @Option(help: "Workloads to run, comma separated: throughput,latency,calls,memory,safety.")
    var workloads: String?

    @Option(help: "Throughput: symbol counts, comma separated.")
    var symbols: String?

    @Option(help: "Throughput: fills per FillGuard run.")
    var fills: Int?

    @Option(help: "Throughput: fills per seed run.")
    var seedFills: Int?

    @Option(help: "Throughput: mixes, comma separated: scalein,standard.")
    var mix: String?

    @Option(help: "Throughput at 1,000 symbols: broker latencies in microseconds, comma separated.")
    var latencyUs: String?

    @Option(help: "Latency: offered loads in fills/s, comma separated.")
    var rates: String?

    @Option(help: "Latency: symbols.")
    var latencySymbols: Int?

    @Option(help: "Memory: idle symbols.")
    var idleSymbols: Int?

    @Option(help: "Memory: fills on the hot symbol.")
    var hotFills: Int?

    @Option(help: ArgumentHelp("Run one memory workload in this process and print it as JSON (used by bench itself).", visibility: .hidden))
    var child: String?

    func validate() throws {
        if let runs, runs < 1 { throw ValidationError("--runs must be at least 1") }
        if let workloads {
            for name in workloads.split(separator: ",") where !BenchPlan.allWorkloads.contains(String(name)) {
                throw ValidationError("unknown workload '\(name)'; known: \(BenchPlan.allWorkloads.joined(separator: ","))")
            }
        }
        if let symbols, integers(symbols) == nil { throw ValidationError("--symbols must be positive integers, comma separated") }
        if let rates, integers(rates) == nil { throw ValidationError("--rates must be positive integers, comma separated") }
        if let latencyUs, integers(latencyUs, allowZero: true) == nil { throw ValidationError("--latency-us must be integers, comma separated") }
        if let mix {
            for name in mix.split(separator: ",") where Mix(rawValue: String(name)) == nil {
                throw ValidationError("unknown mix '\(name)'; known: scalein,standard")
            }
        }
        for (name, value) in [("--fills", fills), ("--seed-fills", seedFills), ("--latency-symbols", latencySymbols),
                              ("--idle-symbols", idleSymbols), ("--hot-fills", hotFills)] {
            if let value, value < 1 { throw ValidationError("\(name) must be at least 1") }
        }
    }

    private func integers(_ text: String, allowZero: Bool = false) -> [Int]? {
        let values = text.split(separator: ",").map { Int($0) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? -1) >= (allowZero ? 0 : 1) }) else { return nil }
        return values.compactMap { $0 }
    }

    func run() async throws {
        if let child {
            guard let measurement = await BenchSuite.runChildWorkload(child.split(separator: " ").map(String.init)) else {
                writeToStandardError("fillguard bench: unknown child workload '\(child)'\n")
                throw ExitCode(2)
            }
            let data = try JSONEncoder().encode(measurement)
            print(String(decoding: data, as: UTF8.self))
            return
        }
        var plan = smoke ? BenchPlan.smoke : BenchPlan()
        if let runs { plan.runs = runs }
        if let workloads { plan.workloads = workloads.split(separator: ",").map(String.init) }
        if let symbols, let values = integers(symbols) { plan.symbols = values }
        if let fills { plan.fills = fills }
        if let seedFills { plan.seedFills = seedFills }
        if let mix { plan.mixes = mix.split(separator: ",").compactMap { Mix(rawValue: String($0)) } }
        if let latencyUs, let values = integers(latencyUs, allowZero: true) { plan.latencies = values.map { .microseconds($0) } }
        if let rates, let values = integers(rates) { plan.rates = values }
        if let latencySymbols { plan.latencySymbols = latencySymbols }
        if let idleSymbols { plan.idleSymbols = idleSymbols }
        if let hotFills { plan.hotFills = hotFills }
        let suite = BenchSuite(plan: plan, childCommand: ["/proc/self/exe", "bench", "--child"]) { line in
            writeToStandardError(line + "\n")
        }
        let results = await suite.run()
        print(json ? results.json : results.text)
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
        print(String(decoding: data, as: UTF8.self))
    }
}
