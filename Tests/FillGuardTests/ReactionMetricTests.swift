import FillGuard
import FillGuardCore
import Synchronization
import Testing

/// The reaction latency (fill received to protective operation handed to the broker) is taken for
/// every fill, also when its protective work goes out later than its own event: behind an
/// operation in flight. Leaving those out made the percentiles read low exactly when slow.
@Suite("Reaction latency covers fills whose work waited")
struct ReactionMetricTests {
    @Test("a fill that lands while the resizes are in flight gets its reaction when the next resizes go")
    func coalescedFillIsMeasured() async throws {
        let reactions = Reactions()
        let broker = TestBroker()
        let manager = FillManager(broker: broker, configuration: reactions.configuration, logger: .quiet)
        var fills = FillMaker()
        _ = try await manager.openLongAndFillEntry("P1", "GLD", fills: &fills)
        let scaleIn = try #require(await manager.position("P1")?.liveOrder(.scaleIn(0)))
        reactions.removeAll()
        broker.hold()
        // First scale-in fill: the stop and target resizes go out (and are held there).
        manager.receive(fills.fill(scaleIn, 50, at: "98"))
        await broker.waitForHeld(2)
        #expect(reactions.count == 2)
        // Second fill while they are in flight: no operation can go yet.
        manager.receive(fills.fill(scaleIn, 50, at: "98"))
        #expect(await manager.position("P1")?.netQuantity == 200, "the lane has applied the second fill")
        #expect(reactions.count == 2, "nothing went out for it yet")
        broker.releaseAll()
        await manager.waitUntilIdle()
        #expect(broker.requests.suffix(2).allSatisfy { $0.kind == .modify && $0.quantity == 200 }, "\(broker.requests)")
        let taken = reactions.all
        #expect(taken.count == 4, "the second fill's resizes are measured too: \(taken)")
        #expect(taken.allSatisfy { $0 >= .zero })
        #expect(await manager.invariantViolations().isEmpty)
    }

    @Test("operations that react to no fill (a new bracket's entry submit) are not measured")
    func entrySubmitsAreNotReactions() async throws {
        let reactions = Reactions()
        let broker = TestBroker()
        let manager = FillManager(broker: broker, configuration: reactions.configuration, logger: .quiet)
        var fills = FillMaker()
        _ = try await manager.openLongAndFillEntry("P1", "GLD", fills: &fills)
        let samples = reactions.count
        #expect(samples == 2, "the entry fill's stop and target submits")
        // A new bracket: its entry submit is no reaction to anything.
        try await manager.open(.long("P2", "SLV"))
        await manager.waitUntilIdle()
        #expect(reactions.count == samples)
    }
}

/// The reaction latencies a manager reported, and the configuration that reports them here.
private final class Reactions: Sendable {
    private let taken = Mutex<[Duration]>([])

    /// A configuration (immediate retries) whose reaction observer records here.
    var configuration: FillGuardConfiguration {
        FillGuardConfiguration(retry: .immediate, reactionObserver: { [self] reaction in taken.withLock { $0.append(reaction) } })
    }
    /// Every reaction recorded, in order.
    var all: [Duration] { taken.withLock { $0 } }
    /// How many were recorded.
    var count: Int { taken.withLock { $0.count } }
    /// Forgets those recorded so far.
    func removeAll() { taken.withLock { $0.removeAll() } }
}
