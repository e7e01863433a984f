import FillGuard
@testable import FillGuardBench
import FillGuardCore
import Synchronization
import Testing

/// The benchmark harness's own logic: what it counts must be right before any number it prints
/// means anything. No timing is asserted here (speed is asserted only in benchmarks).
@Suite("Benchmark harness", .timeLimit(.minutes(5)))
struct BenchWorkloadTests {
    @Test("the core loop resizes both protective orders on every scale-in fill: exactly 2 operations per fill")
    func coreCountsTwoOperationsPerFill() {
        let result = CoreWorkload.run(fills: 200)
        #expect(result.metrics["fills"] == 200)
        #expect(result.metrics["brokerCallsPerFill"] == 2)
    }

    @Test("one fill per symbol per round, quiescence between rounds: exactly 2 broker calls per fill, no violation")
    func callsWithoutBurstsAreTwoPerFill() async {
        let result = await FillGuardWorkloads.calls(symbols: 3, rounds: 2, burst: 1, latency: .zero)
        #expect(result.metrics["fills"] == 6)
        #expect(result.metrics["brokerCallsPerFill"] == 2)
        #expect(result.metrics["violations"] == 0)
    }

    @Test("catch-up: one fill per symbol per wave, each costing exactly its two protective modifies, no violation")
    func catchUpCountsEveryFill() async throws {
        let result = try #require(await BenchSuite.runChildWorkload(["catchup", "fillguard", "20", "4"]))
        #expect(result.workload == "catchup")
        #expect(result.metrics["fills"] == 80)
        #expect(result.metrics["brokerCallsPerFill"] == 2)
        #expect(result.metrics["violations"] == 0)
        #expect((result.metrics["microsPerFill"] ?? 0) > 0)
        #expect(await BenchSuite.runChildWorkload(["catchup", "fillguard", "20"]) == nil, "no wave count: refused")
    }

    @Test("the latency floor hands over every paced fill and lines up with FillGuard's latency row")
    func latencyFloorCountsEveryFill() async throws {
        let floor = await LatencyFloor.run(symbols: 4, rate: 20_000, fills: 400)
        #expect(floor.metrics["samples"] == 400)
        #expect(floor.implementation == "floor")
        let fillGuard = await FillGuardWorkloads.latency(symbols: 4, rate: 20_000, fills: 400, brokerLatency: .zero)
        #expect(fillGuard.metrics["samples"] == 400)
        #expect(fillGuard.metrics["censored"] == 0)
        #expect(floor.comparisonKey == fillGuard.comparisonKey, "the two rows describe the same load")
        let child = try #require(await BenchSuite.runChildWorkload(["latency", "floor", "100", "10000", "2"]))
        #expect(child.metrics["samples"] == 100)
        #expect(child.metrics["warmupFills"] == 2_500)
        let warmed = await FillGuardWorkloads.latency(symbols: 4, rate: 20_000, fills: 400, brokerLatency: .zero, warmup: 300)
        #expect(warmed.metrics["samples"] == 400, "300 warm-up fills sent first, then 400 recorded")
        #expect(warmed.metrics["censored"] == 0)
        #expect(await BenchSuite.runChildWorkload(["latency", "floor", "100", "10000"]) == nil, "a malformed child request is refused")
        let polling = try #require(await BenchSuite.runChildWorkload(["latency", "fillguard", "100", "10000", "2", "50"]))
        #expect(polling.metrics["samples"] == 100)
        #expect(polling.parameters["strategy"] == "idleSpin=50us", "a row of its own")
        #expect(polling.comparisonKey == child.comparisonKey)
        let dedicated = try #require(await BenchSuite.runChildWorkload(["latency", "fillguard-dedicated", "100", "10000", "2", "50"]))
        #expect(dedicated.metrics["samples"] == 100, "the warm-up's fills are sent but not recorded")
        #expect(dedicated.metrics["warmupFills"] == 2_500, "a quarter of a second at the offered rate")
        #expect(dedicated.metrics["censored"] == 0)
        #expect(dedicated.parameters["strategy"]?.hasPrefix("runnerThreads=") == true, "a row of its own")
        // --dedicated-spin-us 0 (no polling) is a measurement, not a refused child; a rate of 0 is refused.
        let notPolling = try #require(await BenchSuite.runChildWorkload(["latency", "fillguard-dedicated", "100", "10000", "2", "0"]))
        #expect(notPolling.metrics["samples"] == 100 && notPolling.parameters["strategy"]?.hasSuffix("spin=0") == true, "\(notPolling.parameters)")
        #expect(await BenchSuite.runChildWorkload(["latency", "fillguard", "100", "0", "2", "50"]) == nil)
        #expect(await BenchSuite.runChildWorkload(["latency", "seed", "100", "10000", "2", "0"]) == nil, "the seed's cutoff is positive")
    }

    @Test("safety: native modify is never naked and never below the round-trip floor; cancel-then-create is naked in between")
    func safetyMeasuresExactly() async throws {
        let native = await SafetyWorkload.run(.nativeModify, symbols: 2, resizes: 3, interval: .milliseconds(20), latency: .milliseconds(1))
        let floor = try #require(native.metrics["roundTripShareSecondsPer1000"])
        #expect(floor == 10, "10 shares × 1 ms per resize, per 1,000 resizes")
        #expect(native.metrics["nakedShareSecondsPer1000"] == 0)
        #expect(native.metrics["overCoveredShareSecondsPer1000"] == 0)
        #expect(try #require(native.metrics["unprotectedShareSecondsPer1000"]) >= floor * 0.99,
                "the enlarged stop goes live one modify latency after the fill at the earliest")
        #expect(try #require(native.metrics["reactionP50Micros"]) > 0)
        // The exchange times each modify from arrival to effect: never under the configured
        // latency (a sleep does not end early), and 2 × 3 resizes × 2 protective orders of them.
        #expect(try #require(native.metrics["modifyTookMeanMicros"]) >= 1_000)
        let realised = try #require(native.metrics["realisedRoundTripShareSecondsPer1000"])
        #expect(realised >= floor)
        #expect(native.metrics["violations"] == 0)
        #expect(native.metrics["reactionMeanMicros"] != nil)
        let cancelFirst = await SafetyWorkload.run(.cancelThenCreate, symbols: 2, resizes: 3, interval: .milliseconds(20), latency: .milliseconds(1))
        #expect(try #require(cancelFirst.metrics["nakedShareSecondsPer1000"]) > 0, "no stop between the cancel and the new one")
        #expect(cancelFirst.metrics["violations"] == 0)
        #expect(cancelFirst.metrics["realisedRoundTripShareSecondsPer1000"] == nil, "a modify round trip only where modifies resize")
    }

    @Test("safety with fills spread over each interval: a row of its own, held to the same rules")
    func safetySpreadArrival() async throws {
        let together = await SafetyWorkload.run(.nativeModify, symbols: 4, resizes: 2, interval: .milliseconds(40), latency: .milliseconds(1))
        let spread = await SafetyWorkload.run(.nativeModify, symbols: 4, resizes: 2, interval: .milliseconds(40), latency: .milliseconds(1),
                                              arrival: .spread)
        #expect(together.parameters["arrival"] == "together")
        #expect(spread.parameters["arrival"] == "spread")
        #expect(spread.rowKey != together.rowKey && spread.comparisonKey != together.comparisonKey,
                "compared with the seed under the same arrival only")
        let floor = try #require(spread.metrics["roundTripShareSecondsPer1000"])
        #expect(try #require(spread.metrics["unprotectedShareSecondsPer1000"]) >= floor * 0.99)
        #expect(spread.metrics["nakedShareSecondsPer1000"] == 0)
        #expect(spread.metrics["overCoveredShareSecondsPer1000"] == 0)
        #expect(spread.metrics["resizes"] == 8)
        // 4 symbols 10 ms apart: the last fills 30 ms into its step; together, all in one pass.
        #expect(try #require(spread.metrics["stepSpanMicros"]) >= 30_000)
        #expect(try #require(together.metrics["stepSpanMicros"]) < spread.metrics["stepSpanMicros"]!)
        #expect(spread.metrics["violations"] == 0)
    }

    @Test("the standard mix closes every position: no refused fill, no violation")
    func standardMixIsValid() async {
        let result = await FillGuardWorkloads.throughput(symbols: 4, fills: 400, latency: .zero, mix: .standard)
        #expect(result.metrics["rejected"] == 0)
        #expect(result.metrics["violations"] == 0)
        #expect(result.metrics["fills"] == 404)
    }

    @Test("the durable workload journals every fill, recovers the same net from the journal, and reports a store failure instead of a number")
    func durableWorkloadRecovers() async {
        let stores = Mutex<[String: InMemoryJournalStore]>([:])
        let memory = DurableStore(
            name: "memory", durability: .off, newLocation: { "journal" },
            open: { location in
                stores.withLock { stores in
                    if let store = stores[location] { store.reopen(); return store }
                    let store = InMemoryJournalStore()
                    stores[location] = store
                    return store
                }
            },
            remove: { location in _ = stores.withLock { $0.removeValue(forKey: location) } })
        let result = await DurableWorkload.run(store: memory, symbols: 3, fills: 300, snapshotInterval: 50)
        #expect(result.notes.isEmpty, "\(result.notes)")
        #expect(result.metrics["fills"] == 300)
        #expect(result.metrics["violations"] == 0)
        #expect((result.metrics["recordsWritten"] ?? 0) >= 300, "at least the 300 fills were journaled")
        #expect((result.metrics["snapshotsLoaded"] ?? 0) > 0, "the recovery started from snapshots")
        #expect(stores.withLock { $0.isEmpty }, "the run's journal was removed")

        let broken = DurableStore(name: "broken", durability: .off, newLocation: { "x" },
                                  open: { _ throws(JournalError) in throw JournalError(.storage, "disk gone") }, remove: { _ in })
        let failed = await DurableWorkload.run(store: broken, symbols: 1, fills: 10, snapshotInterval: 50)
        #expect(failed.metrics.isEmpty)
        #expect(failed.notes.contains { $0.contains("disk gone") })
    }

    @Test("the fix workload runs its burst again with a session store on disk, and with a synchronous one, and each counts every fill")
    func fixWorkloadMeasuresTheFileStore() async {
        var options = FIXWorkload.Options()
        options.positions = 30
        options.fillsPerPosition = 3
        options.quantity = 300
        options.pacedPositions = 0
        let results = await FIXWorkload.run(options)
        #expect(results.map { $0.parameters["phase"] } == ["burst", "burst-file-store", "burst-file-store-sync"])
        for result in results {
            #expect(result.notes.isEmpty, "\(result.parameters["phase"] ?? "?"): \(result.notes)")
            #expect(result.metrics["fills"] == 90, "30 entries in 3 fills each")
            #expect(result.metrics["violations"] == 0)
            #expect((result.metrics["fillsPerSecond"] ?? 0) > 0)
        }
    }

    @Test("reaction latency runs from the intended send time to the later of the two protective requests; uncovered fills are censored")
    func reactionTrackerAccounting() {
        let tracker = ReactionTracker(symbols: 2, baseShares: 1_000, rate: 1_000)
        let roles: [OrderID: ReactionTracker.Role] = [
            "s0-sl": .init(symbol: 0, isStop: true), "s0-tp": .init(symbol: 0, isStop: false),
            "s1-sl": .init(symbol: 1, isStop: true), "s1-tp": .init(symbol: 1, isStop: false),
        ]
        // Four fills: symbol 0 gets fills 1 and 2 (global 0 and 2), symbol 1 gets fills 1 and 2 (global 1 and 3).
        tracker.arm(roles: roles, start: BenchClock.now() - 1_000_000_000, fills: 4)
        tracker.handed(.modify, orderID: "s0-sl", symbol: "S000000", quantity: Quantity(1_002), type: nil)
        tracker.handed(.modify, orderID: "s0-tp", symbol: "S000000", quantity: Quantity(1_001), type: nil)
        tracker.handed(.cancel, orderID: "s1-sl", symbol: "S000001", quantity: nil, type: nil)
        let result = tracker.finish(now: BenchClock.now())
        // Fill 1 of symbol 0 is covered by both; the other three are censored at the end.
        #expect(result.censored == 3)
        #expect(result.metrics["samples"] == 4)
        // Every latency is at least the second since the (back-dated) start, minus the schedule offset.
        #expect((result.metrics["p50Micros"] ?? 0) >= 990_000)
    }

    @Test("ratios say how many times better FillGuard is, in either direction of 'better'")
    func ratios() {
        #expect(Metric.ratio("fillsPerSecond", fillGuard: 200, seed: 100) == 2)
        #expect(Metric.ratio("p99Micros", fillGuard: 10, seed: 1_000) == 100)
        #expect(Metric.ratio("nakedShareSecondsPer1000", fillGuard: 0, seed: 5) == .infinity)
        #expect(Metric.ratio("nakedShareSecondsPer1000", fillGuard: 0, seed: 0) == nil)
        #expect(Metric.ratio("fills", fillGuard: 1, seed: 2) == nil)
        #expect(BenchResults.median([3, 1, 2]) == 2)
        #expect(BenchResults.median([4, 1, 2, 3]) == 2.5)
    }
}
