import Dispatch
import FillGuard
import FillGuardCore
import MetricsTestKit
import Synchronization
import Testing

/// `fillguard_queue_depth` counts what a lane has taken from its mailbox and not handled yet: a
/// hot lane works through a deep backlog over several passes, and the depth read 1, 2, ... then.
@Suite("Queue depth metric")
struct QueueDepthMetricTests {
    @Test("an event queued while the lane works through a backlog it took records the backlog too")
    func backlogCounts() async throws {
        let metrics = TestMetrics()
        let inside = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let calls = Atomic<Int>(0)
        // The 1st reaction (lane AAA's first protective submit) and the 3rd (lane BBB's) hold
        // their lane inside its pass until released.
        var configuration = FillGuardConfiguration(retry: .immediate, lanePassLimit: 1, reactionObserver: { _ in
            let call = calls.add(1, ordering: .sequentiallyConsistent).newValue
            if call == 1 || call == 3 {
                inside.signal()
                release.wait()
            }
        })
        // One runner thread: while one lane is held inside its pass, the others wait their turn.
        let threads = RunnerThreads(count: 1, name: "test-depth")
        defer { threads.shutdown() }
        configuration.runnerThreads = threads
        let manager = FillManager(broker: TestBroker(), configuration: configuration, logger: .quiet, metricsFactory: metrics)
        var fills = FillMaker()
        try await manager.open(.long("A", "AAA"))
        try await manager.open(.long("B", "BBB"))
        await manager.waitUntilIdle()
        let entryA = try #require(await manager.position("A")?.liveOrder(.entry))
        let entryB = try #require(await manager.position("B")?.liveOrder(.entry))
        @Sendable func waitInside() async {
            await withCheckedContinuation { continuation in DispatchQueue.global().async { inside.wait(); continuation.resume() } }
        }
        manager.receive(fills.fill(entryA, 100, at: "100"))
        #expect(await finishes { await waitInside() })
        // Meanwhile six reports for BBB wait in its mailbox (the one runner is held in AAA).
        for _ in 0..<6 { manager.receive(fills.fill(entryB, 10, at: "100")) }
        release.signal()
        // Lane BBB takes its six and is held inside the first: five more are its backlog.
        #expect(await finishes { await waitInside() })
        manager.receive(fills.fill(entryB, 10, at: "100"))
        let depth = try metrics.expectRecorder("fillguard_queue_depth").lastValue
        #expect((depth ?? 0) >= 6, "the backlog taken counts: \(String(describing: depth))")
        release.signal()
        #expect(await waitUntilIdle(manager))
        #expect(await manager.position("B")?.netQuantity == 70)
    }

    @Test("reads of the state (position(), a monitor's poll) are left out of the queue metrics")
    func readsAreNotMeasured() async throws {
        let metrics = TestMetrics()
        let manager = FillManager(broker: TestBroker(), configuration: FillGuardConfiguration(retry: .immediate), logger: .quiet, metricsFactory: metrics)
        var fills = FillMaker()
        try await manager.open(.long("A", "AAA"))
        await manager.waitUntilIdle()
        let entry = try #require(await manager.position("A")?.liveOrder(.entry))
        manager.receive(fills.fill(entry, 100, at: "100"))
        await manager.waitUntilIdle()
        let waits = try metrics.expectTimer("fillguard_queue_wait").values.count
        let processing = try metrics.expectTimer("fillguard_processing").values.count
        let depths = try metrics.expectRecorder("fillguard_queue_depth").values.count
        #expect(waits > 0 && processing > 0 && depths > 0)
        for _ in 0..<20 { _ = await manager.position("A") }
        _ = await manager.positions()
        _ = await manager.invariantViolations()
        #expect(try metrics.expectTimer("fillguard_queue_wait").values.count == waits)
        #expect(try metrics.expectTimer("fillguard_processing").values.count == processing)
        #expect(try metrics.expectRecorder("fillguard_queue_depth").values.count == depths)
    }

    @Test("with a journal, the events whose write is in flight count in the queue depth")
    func journaledBatchCounts() async throws {
        let metrics = TestMetrics()
        let store = HeldJournalStore()
        let manager = FillManager(broker: TestBroker(), journal: Journal(store: store), logger: .quiet, metricsFactory: metrics)
        _ = try await manager.recover()
        var fills = FillMaker()
        try await manager.open(.long("A", "AAA"))
        await manager.waitUntilIdle()
        let entry = try #require(await manager.position("A")?.liveOrder(.entry))
        store.armed.store(true, ordering: .sequentiallyConsistent)
        manager.receive(fills.fill(entry, 10, at: "100"))
        #expect(await store.waitUntilHolding())
        // The first fill's write is held: the second waits in the mailbox behind it.
        manager.receive(fills.fill(entry, 10, at: "100"))
        #expect(try metrics.expectRecorder("fillguard_queue_depth").lastValue == 2, "the held write's fill and the one queued")
        store.release()
        #expect(await waitUntilIdle(manager))
        #expect(await manager.position("A")?.netQuantity == 20)
    }
}
