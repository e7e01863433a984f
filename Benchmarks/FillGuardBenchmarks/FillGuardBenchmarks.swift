import Benchmark
import FillGuard
import FillGuardBench
import FillGuardCore
#if canImport(Glibc)
import Glibc
#endif

/// Smoke mode (`FILLGUARD_BENCHMARKS_SMOKE=1`, what CI runs): every benchmark runs, tiny and
/// briefly, to show that it still works; its numbers mean nothing.
let smoke = getenv("FILLGUARD_BENCHMARKS_SMOKE").map { String(cString: $0) == "1" } ?? false

/// Custom metrics reported by the whole-runtime benchmarks (measured by the workload itself,
/// setup excluded).
enum RuntimeMetric {
    /// Fills per second through the whole runtime.
    static var fillsPerSecond: BenchmarkMetric { .custom("fills/s", polarity: .prefersLarger) }
    /// Nanoseconds of process CPU per fill.
    static var cpuNanosPerFill: BenchmarkMetric { .custom("CPU ns/fill", polarity: .prefersSmaller) }
    /// Broker calls per 1,000 fills.
    static var callsPerThousandFills: BenchmarkMetric { .custom("broker calls/1000 fills", polarity: .prefersSmaller) }
}

/// A state machine with one open long bracket (1,000 shares, stop and target live and acked)
/// and a scale-in large enough for `fills` one-share fills.
func preparedMachine(fills: Int) -> (SymbolStateMachine, OrderID) {
    var machine = SymbolStateMachine(symbol: "BENCH")
    var actions: [SymbolStateMachine.Action] = []
    let spec = BracketSpec(positionID: "P1", symbol: "BENCH", side: .buy, quantity: Quantity(1_000), entryType: .market,
                           stopLoss: Price("90"), takeProfit: Price("110"),
                           scaleIns: [.init(quantity: Quantity(fills + 1), type: .limit(Price("100")!))])
    do {
        try machine.open(spec, emitting: &actions)
        drain(&machine, &actions)
        let entry = machine.orderID(of: "P1", role: .entry)!
        try machine.apply(ExecutionReport(executionID: "setup", orderID: entry, symbol: "BENCH", side: .buy,
                                          lastQuantity: Quantity(1_000), lastPrice: Price("100")!), emitting: &actions)
        drain(&machine, &actions)
    } catch {
        preconditionFailure("benchmark setup failed: \(error)")
    }
    return (machine, machine.orderID(of: "P1", role: .scaleIn(0))!)
}

/// Sends and acknowledges every operation the machine has ready, as a zero-latency broker would.
@inline(__always)
func drain(_ machine: inout SymbolStateMachine, _ actions: inout [SymbolStateMachine.Action]) {
    while let operation = machine.nextOperation() {
        machine.operationSucceeded(operation, emitting: &actions)
    }
    actions.removeAll(keepingCapacity: true)
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .throughput],
                                           maxDuration: smoke ? .milliseconds(200) : .seconds(2), maxIterations: smoke ? 3 : 100)
    let runtimeFills = smoke ? 2_000 : 100_000
    let seedFills = smoke ? 1_000 : 20_000

    // The rules alone: one scale-in fill booked, both protective modifies sent and acknowledged.
    Benchmark("Core: scale-in fill, both protective orders resized", configuration: .init(scalingFactor: smoke ? .one : .kilo)) { benchmark in
        var (machine, scaleIn) = preparedMachine(fills: benchmark.scaledIterations.count)
        var actions: [SymbolStateMachine.Action] = []
        actions.reserveCapacity(16)
        let price = Price("100")!
        benchmark.startMeasurement()
        for index in benchmark.scaledIterations {
            do {
                try machine.apply(ExecutionReport(executionID: ExecutionID(String(index, radix: 36)), orderID: scaleIn, symbol: "BENCH",
                                                  side: .buy, lastQuantity: Quantity(1), lastPrice: price), emitting: &actions)
            } catch {
                preconditionFailure("fill refused: \(error)")
            }
            drain(&machine, &actions)
        }
        benchmark.stopMeasurement()
        blackHole(machine)
    }

    // The whole runtime: lanes, dispatch, tasks, an in-process zero-latency broker.
    let runtime = Benchmark.Configuration(metrics: [.wallClock, .mallocCountTotal, RuntimeMetric.fillsPerSecond,
                                                    RuntimeMetric.cpuNanosPerFill, RuntimeMetric.callsPerThousandFills],
                                          maxDuration: smoke ? .seconds(1) : .seconds(10), maxIterations: smoke ? 1 : 5)
    for (name, symbols) in [("1,000 symbols", 1_000), ("one hot symbol", 1)] {
        Benchmark("Runtime: 100k scale-in fills, \(name)", configuration: runtime) { benchmark in
            // Allocations and wall clock of the fills alone: setup (the manager, the brackets and
            // their entry fills) and the final checks are outside the measurement.
            let result = await FillGuardWorkloads.throughput(symbols: symbols, fills: runtimeFills, latency: .zero, mix: .scalein,
                                                             timed: TimedRegion(begin: { benchmark.startMeasurement() }, end: { benchmark.stopMeasurement() }))
            report(result, to: benchmark)
        }
    }
    Benchmark("Seed baseline: 20k scale-in fills, 1,000 symbols", configuration: runtime) { benchmark in
        let result = await SeedWorkloads.throughput(symbols: 1_000, fills: seedFills, latency: .zero, mix: .scalein,
                                                    timed: TimedRegion(begin: { benchmark.startMeasurement() }, end: { benchmark.stopMeasurement() }))
        report(result, to: benchmark)
    }
}

/// Copies a workload's own numbers into the benchmark's custom metrics.
func report(_ result: Measurement, to benchmark: Benchmark) {
    benchmark.measurement(RuntimeMetric.fillsPerSecond, Int(result.metrics["fillsPerSecond"] ?? 0))
    benchmark.measurement(RuntimeMetric.cpuNanosPerFill, Int((result.metrics["cpuMicrosPerFill"] ?? 0) * 1_000))
    benchmark.measurement(RuntimeMetric.callsPerThousandFills, Int((result.metrics["brokerCallsPerFill"] ?? 0) * 1_000))
}
