import FillGuard
import FillGuardCore
import FillGuardFIX
import Testing
@testable import FillGuardSimulator

@Suite("The FIX final check", .serialized, .timeLimit(.minutes(5)))
struct FinalCheckOverFIXTests {
    @Test("a role left waiting for its re-arm (the venue refused its stop) is re-armed before the check judges, not reported as unprotected")
    func rolesWaitingForTheRearmAreTriedAgain() async throws {
        let harness = try await Harness.start()
        let retry = RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(20), multiplier: 2, maxDelay: .milliseconds(200), jitter: 0)
        // No re-arm timer: only the check's own re-arm can bring the stop back.
        let manager = FillManager(broker: harness.broker, configuration: FillGuardConfiguration(retry: retry, rearmDelay: nil), logger: quietLogger)
        let feed = Task { await manager.run() }
        try await manager.open(BracketSpec(positionID: "P1", symbol: "GLD", side: .buy, quantity: 300, entryType: .market,
                                           stopLoss: Price("245"), takeProfit: Price("250")))
        await manager.waitUntilIdle()
        let entry = try #require(await manager.position("P1")?.liveOrder(.entry))
        _ = try await harness.peer.command("reject-orders 1") // the next new order: the stop
        _ = try await harness.peer.command("fill \(entry.id) 300 248.1")
        let refused = try await settle(manager, "P1") { $0.netQuantity == 300 && $0.liveOrder(.takeProfit) != nil }
        #expect(refused.liveOrder(.stopLoss) == nil, "the venue refused the stop: \(refused.orders)")
        #expect(await manager.invariantViolations().isEmpty, "a role that failed for good is alerted, not a violation")

        let check = await FIXSimulationSession.finalCheck(manager, harness.broker, settleTimeout: .seconds(20), clock: ContinuousClock()) {
            $0.rawValue.hasPrefix("P1-")
        }
        #expect(check.problems.isEmpty, "\(check.problems)")
        let position = try #require(await manager.position("P1"))
        #expect(position.liveOrder(.stopLoss)?.openQuantity == 300)
        let orders = try await harness.peer.orders()
        #expect(orders[try #require(position.liveOrder(.stopLoss)).id.rawValue]?.leaves == "300")
        feed.cancel()
        await manager.shutdown()
        await harness.stop()
    }
}
