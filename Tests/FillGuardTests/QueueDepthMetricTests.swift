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
}
