import FillGuardCore
import FillGuardSimulator
import Foundation

/// What `fillguard bench` runs: every workload's parameters, and how many times.
public struct BenchPlan: Sendable {
    /// Workload names: throughput, latency, calls, memory, safety, durable, fix.
    public static let allWorkloads = ["throughput", "latency", "calls", "memory", "safety", "durable", "fix"]

    /// Workloads to run.
    public var workloads: [String] = allWorkloads
    /// Repetitions of the whole plan; medians are reported.
    public var runs = 5
    /// Throughput: symbol counts.
    public var symbols = [1, 100, 1_000, 100_000]
    /// Throughput: fills per FillGuard run.
    public var fills = 1_000_000
    /// Throughput: extra windows (reports queued at most) for the `scalein` row at 1,000 symbols
    /// and no broker latency, beside the default 16,384. With fewer queued than symbols a lane
    /// seldom folds fills into one resize: nearly every fill gets its own two operations.
    public var extraWindows = [1_000]
    /// Throughput: fills per seed run (it is slower).
    public var seedFills = 100_000
    /// Throughput: mixes.
    public var mixes: [Mix] = Mix.allCases
    /// Throughput: broker latencies tried at 1,000 symbols (scale-in mix); zero runs everywhere.
    public var latencies: [Duration] = [.zero, .microseconds(100), .milliseconds(1)]
    /// Latency: offered loads in fills per second.
    public var rates = [10_000, 100_000]
    /// Latency: symbols.
    public var latencySymbols = 1_000
    /// Latency: FillGuard is also measured with this `idleSpin` (microseconds), in a row of its own.
    public var latencyIdleSpinMicros = 100
    /// Latency: how long the dedicated row's runner thread polls before it sleeps (microseconds).
    /// A runner that owns its processor can poll through the sender's stalls on this machine (a
    /// kernel worker or the VM's agent taking the sender's processor for 0.3 to 3 ms), as the
    /// floor's taker does; one that sleeps after 100 µs pays a wake-up on top of each such stall.
    public var latencyDedicatedSpinMicros = 5_000
    /// Latency: seconds of offered load for FillGuard.
    public var latencySeconds = 2.0
    /// Latency: waves of the catch-up row (one fill per latency symbol per wave), which measures
    /// what a fill costs while a runner works off a backlog in the sparse pattern.
    public var catchUpWaves = 200
    /// Latency: seconds of offered load for the seed, and how long its backlog may drain.
    public var seedLatencySeconds = 0.5
    /// Latency: the seed's drain cut-off.
    public var seedCutoff: Duration = .seconds(2)
    /// Calls: symbols, rounds, bursts and broker latencies.
    public var callSymbols = 100
    /// Calls: rounds of fills.
    public var callRounds = 5
    /// Calls: fills per symbol per round (1: no burst).
    public var bursts = [1, 10]
    /// Calls: broker latencies.
    public var callLatencies: [Duration] = [.microseconds(100), .milliseconds(1)]
    /// Memory: idle symbols.
    public var idleSymbols = 100_000
    /// Memory: fills on the one hot symbol.
    public var hotFills = 1_000_000
    /// Safety: symbols, resizes per symbol, time between resizes and broker latency.
    public var safetySymbols = 100
    /// Safety: resizes per symbol.
    public var safetyResizes = 10
    /// Safety: time between resizes (the seed needs about 210 ms per resize to keep up).
    public var safetyInterval: Duration = .milliseconds(250)
    /// Safety: broker latency.
    public var safetyLatency: Duration = .milliseconds(1)
    /// Safety: how the symbols' fills arrive in each step (all at once, and one at a time).
    public var safetyArrivals = SafetyWorkload.Arrival.allCases
    /// Run each memory and latency workload in a fresh process (true unless a single child runs it).
    public var memoryInChildProcess = true
    /// Durable: the journal stores measured (the CLI gives SQLite, and PostgreSQL when a server is configured).
    public var durableStores: [DurableStore] = []
    /// Durable: symbols.
    public var durableSymbols = 100
    /// Durable: fills per run.
    public var durableFills = 300_000
    /// Durable: records per symbol between snapshots.
    public var snapshotInterval = 1_000
    /// FIX: the workload's options (brackets, fills per entry, paced phase, exchange).
    public var fix = FIXWorkload.Options()

    /// The full plan.
    public init() {}

    /// Every workload, tiny: a few seconds in all, for CI.
    public static var smoke: BenchPlan {
        var plan = BenchPlan()
        plan.runs = 1
        plan.symbols = [1, 100, 1_000]
        plan.fills = 3_000
        plan.seedFills = 1_000
        plan.latencies = [.zero, .milliseconds(1)]
        plan.rates = [10_000]
        plan.latencySymbols = 10
        plan.latencySeconds = 0.2
        plan.catchUpWaves = 5
        plan.seedLatencySeconds = 0.05
        plan.seedCutoff = .milliseconds(500)
        plan.callSymbols = 10
        plan.callRounds = 2
        plan.callLatencies = [.milliseconds(1)]
        plan.idleSymbols = 2_000
        plan.hotFills = 20_000
        plan.safetySymbols = 5
        plan.safetyResizes = 2
        plan.durableSymbols = 10
        plan.durableFills = 3_000
        plan.fix.positions = 50
        plan.fix.pacedPositions = 20
        return plan
    }
}

/// Runs a `BenchPlan` and aggregates the runs.
public struct BenchSuite: Sendable {
    /// The plan.
    public var plan: BenchPlan
    /// The command that runs one workload in a fresh process and prints its `Measurement` as
    /// JSON (the memory workloads use it), e.g. ["/proc/self/exe", "bench", "--child"].
    public var childCommand: [String]
    /// Called with a line of progress (to standard error).
    public var progress: @Sendable (String) -> Void

    /// A suite.
    public init(plan: BenchPlan, childCommand: [String], progress: @escaping @Sendable (String) -> Void) {
        self.plan = plan
        self.childCommand = childCommand
        self.progress = progress
    }

    /// Runs the plan `plan.runs` times.
    public func run() async -> BenchResults {
        var runs: [[Measurement]] = []
        for run in 1...max(1, plan.runs) {
            progress("run \(run)/\(plan.runs)")
            runs.append(await runOnce())
        }
        return BenchResults(plan: plan, runs: runs)
    }

    private func runOnce() async -> [Measurement] {
        var results: [Measurement] = []
        func note(_ measurement: Measurement) {
            progress("  \(measurement.workload) \(measurement.implementation) \(measurement.parameters.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))")
            results.append(measurement)
        }
        let workloads = Set(plan.workloads)
        if workloads.contains("memory") {
            // First, so that nothing else has grown the process (they run in fresh processes anyway).
            for child in [["memory-hot", "fillguard", "\(plan.hotFills)"], ["memory-idle", "fillguard", "\(plan.idleSymbols)"],
                          ["memory-idle", "seed", "\(plan.idleSymbols)"]] {
                note(await runChild(child))
            }
        }
        if workloads.contains("latency") {
            // Each in a fresh process: the seed leaves retry timers and a backlog behind that would
            // share the cores with whatever runs next, and latency is what they would disturb most.
            // Before the in-process workloads: a parent that has grown to hundreds of MiB (the
            // 100,000-symbol throughput rows) had the kernel reclaim its memory while the first
            // children ran, and the 10,000 fills/s floor read 3.5 ms at p99 in every such run.
            for rate in plan.rates {
                let fills = max(plan.latencySymbols, Int(Double(rate) * plan.latencySeconds))
                let seedFills = max(plan.latencySymbols, Int(Double(rate) * plan.seedLatencySeconds))
                let cutoff = Int(BenchClock.nanos(plan.seedCutoff) / 1_000_000)
                for child in [["latency", "floor", "\(fills)", "\(rate)", "\(plan.latencySymbols)"],
                              ["latency", "fillguard", "\(fills)", "\(rate)", "\(plan.latencySymbols)"],
                              ["latency", "fillguard", "\(fills)", "\(rate)", "\(plan.latencySymbols)", "\(plan.latencyIdleSpinMicros)"],
                              ["latency", "fillguard-dedicated", "\(fills)", "\(rate)", "\(plan.latencySymbols)", "\(plan.latencyDedicatedSpinMicros)"],
                              ["latency", "seed", "\(seedFills)", "\(rate)", "\(plan.latencySymbols)", "\(cutoff)"]] {
                    note(await runChild(child))
                }
            }
            // What sets the tail: the cost per fill of working off a backlog in the same pattern.
            note(await runChild(["catchup", "fillguard", "\(plan.latencySymbols)", "\(plan.catchUpWaves)"]))
        }
        if workloads.contains("throughput") {
            // The rules alone (no runtime, no tasks), every fill's two operations sent: the cost of
            // the rules per fill. (The runtime can beat it by folding queued fills into one resize.)
            note(CoreWorkload.run(fills: min(plan.fills, 200_000)))
            for symbols in plan.symbols {
                for mix in plan.mixes {
                    let latencies: [Duration] = symbols == 1_000 && mix == .scalein ? plan.latencies : [.zero]
                    for latency in latencies {
                        note(await FillGuardWorkloads.throughput(symbols: symbols, fills: plan.fills, latency: latency, mix: mix))
                        note(await SeedWorkloads.throughput(symbols: symbols, fills: min(plan.fills, plan.seedFills), latency: latency, mix: mix))
                    }
                    if symbols == 1_000, mix == .scalein {
                        for window in plan.extraWindows where window != FillGuardWorkloads.defaultWindow {
                            note(await FillGuardWorkloads.throughput(symbols: symbols, fills: plan.fills, latency: .zero, mix: mix, window: window))
                            note(await SeedWorkloads.throughput(symbols: symbols, fills: min(plan.fills, plan.seedFills), latency: .zero, mix: mix, window: window))
                        }
                    }
                }
            }
        }
        if workloads.contains("calls") {
            for latency in plan.callLatencies {
                for burst in plan.bursts {
                    note(await FillGuardWorkloads.calls(symbols: plan.callSymbols, rounds: plan.callRounds, burst: burst, latency: latency))
                    note(await SeedWorkloads.calls(symbols: plan.callSymbols, rounds: plan.callRounds, burst: burst, latency: latency))
                }
            }
        }
        if workloads.contains("safety") {
            for arrival in plan.safetyArrivals {
                for strategy in SafetyWorkload.Strategy.allCases {
                    note(await SafetyWorkload.run(strategy, symbols: plan.safetySymbols, resizes: plan.safetyResizes,
                                                  interval: plan.safetyInterval, latency: plan.safetyLatency, arrival: arrival))
                }
            }
        }
        if workloads.contains("durable") {
            if plan.durableStores.isEmpty { progress("  durable: no journal store to measure") }
            for store in plan.durableStores {
                note(await DurableWorkload.run(store: store, symbols: plan.durableSymbols, fills: plan.durableFills,
                                               snapshotInterval: plan.snapshotInterval))
            }
        }
        if workloads.contains("fix") {
            for measurement in await FIXWorkload.run(plan.fix) { note(measurement) }
        }
        return results
    }

    /// Runs one workload in a fresh process: `kind implementation size [more]`. One that fails
    /// is a row with no metrics and a note saying so (the command then exits 1): never left out.
    private func runChild(_ arguments: [String]) async -> Measurement {
        let failed = Measurement(workload: arguments[0], implementation: arguments[1].hasPrefix("fillguard") ? "fillguard" : arguments[1],
                                 parameters: ["child": arguments.joined(separator: " ")], metrics: [:],
                                 notes: [Self.childFailed + " (" + arguments.joined(separator: " ") + ")"])
        if !plan.memoryInChildProcess || childCommand.isEmpty {
            return await Self.runChildWorkload(arguments) ?? failed
        }
        let command = childCommand
        let output = await FeedThread.run(name: "bench-child") { () -> Data? in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: command[0])
            process.arguments = Array(command.dropFirst()) + [arguments.joined(separator: " ")]
            guard let (exit, pipe) = try? ChildExit.spawn(process, {
                let pipe = Pipe()
                process.standardOutput = pipe
                return pipe
            }) else { return nil }
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            exit.wait()
            return process.terminationStatus == 0 ? data : nil
        }
        guard let output, let measurement = try? JSONDecoder().decode(Measurement.self, from: output) else {
            progress("  \(arguments.joined(separator: " ")): \(Self.childFailed)")
            return failed
        }
        return measurement
    }

    /// The note of a row whose child process failed.
    public static let childFailed = "the child process failed"

    /// Runs one workload in this process: `kind implementation size [more]` (what a child does;
    /// `core fillguard N` is the single-threaded core loop, for profiling; `latency fillguard
    /// FILLS RATE SYMBOLS [IDLE-SPIN-µs]`, `latency fillguard-dedicated FILLS RATE SYMBOLS SPIN-µs` (lanes on
    /// `RunnerThreads` bound to every processor but the pacer's), `latency floor FILLS RATE SYMBOLS` and `latency seed FILLS RATE SYMBOLS CUTOFF-MS` one latency run;
    /// `catchup fillguard SYMBOLS WAVES` the catch-up cost per fill).
    public static func runChildWorkload(_ arguments: [String]) async -> Measurement? {
        guard arguments.count >= 3, let size = Int(arguments[2]), size > 0 else { return nil }
        let more = arguments.dropFirst(3).compactMap { Int($0) }
        // Counts and rates are positive; a latency row's idle spin (its fourth number) may be 0.
        guard more.count == arguments.count - 3,
              more.enumerated().allSatisfy({ $0.element > 0 || ($0.offset == 2 && $0.element == 0 && arguments[0] == "latency" && arguments[1] != "seed") })
        else { return nil }
        if arguments[0] == "latency", !more.isEmpty {
            // FillGuard and the floor first run a quarter of a second at the same pace, not recorded.
            let warmup = more[0] / 4
            switch (arguments[1], more.count) {
            case ("floor", 2):
                return await LatencyFloor.run(symbols: more[1], rate: more[0], fills: size, warmup: warmup)
            case ("fillguard", 2):
                return await FillGuardWorkloads.latency(symbols: more[1], rate: more[0], fills: size, brokerLatency: .zero, warmup: warmup)
            case ("fillguard", 3):
                return await FillGuardWorkloads.latency(symbols: more[1], rate: more[0], fills: size, brokerLatency: .zero,
                                                        idleSpin: .microseconds(more[2]), warmup: warmup)
            case ("fillguard-dedicated", 3):
                return await FillGuardWorkloads.latency(symbols: more[1], rate: more[0], fills: size, brokerLatency: .zero,
                                                        idleSpin: .microseconds(more[2]), dedicated: true, warmup: warmup)
            case ("seed", 3):
                return await SeedWorkloads.latency(symbols: more[1], rate: more[0], fills: size, brokerLatency: .zero,
                                                   cutoff: .milliseconds(more[2]))
            default:
                return nil
            }
        }
        if arguments[0] == "catchup", arguments[1] == "fillguard", more.count == 1 {
            return await CatchUpWorkload.run(symbols: size, waves: more[0])
        }
        guard more.isEmpty else { return nil }
        switch (arguments[0], arguments[1]) {
        case ("memory-hot", "fillguard"): return await FillGuardWorkloads.hotMemory(fills: size)
        case ("memory-idle", "fillguard"): return await FillGuardWorkloads.idleMemory(symbols: size)
        case ("memory-idle", "seed"): return await SeedWorkloads.idleMemory(symbols: size)
        case ("core", "fillguard"): return CoreWorkload.run(fills: size)
        default: return nil
        }
    }
}
