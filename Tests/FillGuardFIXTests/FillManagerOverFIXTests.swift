import FillGuard
import FillGuardCore
import Foundation
import Logging
import Testing
@testable import FillGuardFIX

/// Waits until position `id` satisfies `predicate` (re-checked on every position or order change
/// the manager publishes), then until the manager is quiescent (every broker operation answered).
func settle(_ manager: FillManager, _ id: PositionID, timeout: Duration = .seconds(30),
            _ predicate: @escaping @Sendable (PositionSnapshot) -> Bool) async throws -> PositionSnapshot {
    let positionChanges = manager.positionChanges()
    let orderChanges = manager.orderChanges()
    @Sendable func reached() async -> Bool {
        guard let current = await manager.position(id) else { return false }
        return predicate(current)
    }
    if await !reached() {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await change in positionChanges where change.id == id { if await reached() { return } }
                throw CancellationError()
            }
            group.addTask {
                for await change in orderChanges where change.positionID == id { if await reached() { return } }
                throw CancellationError()
            }
            group.addTask {
                try await Task.sleep(for: timeout) // a failure guard, not synchronisation
                throw FIXPeerError(description: "position \(id) never reached the expected state: \(String(describing: await manager.position(id)))")
            }
            defer { group.cancelAll() }
            try await group.next()
        }
    }
    await manager.waitUntilIdle()
    let settled = try #require(await manager.position(id))
    #expect(predicate(settled), "the state held at quiescence")
    return settled
}

/// A manager over the harness's broker, consuming its events.
func manager(over harness: Harness) -> (FillManager, Task<Void, Never>) {
    let retry = RetryPolicy(maxAttempts: 5, baseDelay: .milliseconds(20), multiplier: 2, maxDelay: .milliseconds(200), jitter: 0)
    let manager = FillManager(broker: harness.broker, configuration: FillGuardConfiguration(retry: retry), logger: quietLogger)
    let feed = Task { await manager.run() }
    return (manager, feed)
}

@Suite("FillManager over FIX against the QuickFIX test exchange", .serialized, .timeLimit(.minutes(5)))
struct FillManagerOverFIXTests {
    let bracket = BracketSpec(positionID: "P1", symbol: "GLD", side: .buy, quantity: 300, entryType: .market, stopLoss: Price("245"),
                              takeProfit: Price("250"), scaleIns: [BracketSpec.ScaleIn(quantity: 300, type: .limit(Price("246")!))])

    @Test func fullBracketLifecycle() async throws {
        let harness = try await Harness.start()
        let (manager, feed) = manager(over: harness)
        try await manager.open(bracket)
        await manager.waitUntilIdle()
        let opened = try #require(await manager.position("P1"))
        let entry = try #require(opened.liveOrder(.entry))
        let scaleIn = try #require(opened.liveOrder(.scaleIn(0)))
        var orders = try await harness.peer.orders()
        #expect(orders[entry.id.rawValue]?.ordType == "1")
        #expect(orders[scaleIn.id.rawValue]?.ordType == "2")

        // Entry fills: a stop and a target for the whole position appear at the exchange.
        try await harness.peer.command("fill \(entry.id) 300 248.1")
        var position = try await settle(manager, "P1") { $0.netQuantity == 300 }
        let stop = try #require(position.liveOrder(.stopLoss))
        let target = try #require(position.liveOrder(.takeProfit))
        orders = try await harness.peer.orders()
        #expect(orders[stop.id.rawValue]?.ordType == "3")
        #expect(orders[stop.id.rawValue]?.side == "2")
        #expect(orders[stop.id.rawValue]?.leaves == "300")
        #expect(orders[target.id.rawValue]?.ordType == "2")
        #expect(orders[target.id.rawValue]?.leaves == "300")

        // Scale-in partially fills: both protective orders grow by native modify (no cancel).
        try await harness.peer.command("fill \(scaleIn.id) 120 246")
        position = try await settle(manager, "P1") { $0.netQuantity == 420 }
        orders = try await harness.peer.orders()
        #expect(orders[stop.id.rawValue]?.leaves == "420")
        #expect(orders[target.id.rawValue]?.leaves == "420")
        #expect(orders[stop.id.rawValue]?.clOrdID.contains("~") == true, "replaced in place: the ClOrdID chain moved on")
        #expect(orders[stop.id.rawValue]?.isLive == true && orders[target.id.rawValue]?.isLive == true)
        #expect(position.liveOrder(.stopLoss)?.id == stop.id, "the same order, modified, not replaced by a new one")

        // A partial stop fill: the target shrinks to the new position; the stop's own remainder matches.
        try await harness.peer.command("fill \(stop.id) 100 245")
        position = try await settle(manager, "P1") { $0.netQuantity == 320 }
        orders = try await harness.peer.orders()
        #expect(orders[stop.id.rawValue]?.leaves == "320")
        #expect(orders[target.id.rawValue]?.leaves == "320")

        // The stop fills out: flat, and everything left (target, scale-in remainder) is cancelled.
        try await harness.peer.command("fill \(stop.id) 320 245")
        position = try await settle(manager, "P1") { $0.status == .closed }
        #expect(position.netQuantity == 0)
        orders = try await harness.peer.orders()
        #expect(orders[stop.id.rawValue]?.status == "2")
        #expect(orders[target.id.rawValue]?.status == "4")
        #expect(orders[scaleIn.id.rawValue]?.status == "4")
        #expect(orders.values.filter(\.isLive).isEmpty)
        #expect(await manager.invariantViolations().isEmpty)
        #expect(!harness.peer.events.contains { $0.hasPrefix("app F \(stop.id)") && !$0.contains("~") })
        harness.expectNoRejectsFromPeer()
        feed.cancel()
        await harness.stop()
    }

    @Test func tooLateCancelStillCountsTheFillAndReprotects() async throws {
        let harness = try await Harness.start()
        let (manager, feed) = manager(over: harness)
        try await manager.open(bracket)
        await manager.waitUntilIdle()
        let opened = try #require(await manager.position("P1"))
        let entry = try #require(opened.liveOrder(.entry))
        let scaleIn = try #require(opened.liveOrder(.scaleIn(0)))
        try await harness.peer.command("fill \(entry.id) 300 248.1")
        let open = try await settle(manager, "P1") { $0.netQuantity == 300 }
        let stop = try #require(open.liveOrder(.stopLoss))

        // The exchange sits on cancels: the stop fills out, FillManager cancels the target and
        // the scale-in, and meanwhile the scale-in fills (the race a real market produces).
        try await harness.peer.command("hold on")
        let mark = harness.peer.lines.count
        try await harness.peer.command("fill \(stop.id) 300 245")
        try await harness.peer.waitFor(from: mark) { $0.hasPrefix("EVENT held F \(scaleIn.id)~") }
        try await harness.peer.command("fill \(scaleIn.id) 300 246")
        try await harness.peer.command("hold off")
        try await harness.peer.command("release")

        // The scale-in's cancel came back too late; its fill counts: long 300 again, protected again.
        let position = try await settle(manager, "P1") { position in
            position.netQuantity == 300 && position.liveOrder(.stopLoss)?.openQuantity == 300
                && position.liveOrder(.takeProfit)?.openQuantity == 300
        }
        #expect(position.status == .open)
        #expect(harness.peer.events.contains { $0.hasPrefix("cancel-reject \(scaleIn.id)~") && $0.hasSuffix("reason=0") },
                "the scale-in's cancel was answered too late")
        let orders = try await harness.peer.orders()
        let live = orders.values.filter(\.isLive)
        #expect(live.count == 2)
        #expect(Set(live.map(\.leaves)) == ["300"])
        #expect(Set(live.map(\.side)) == ["2"])
        #expect(await manager.invariantViolations().isEmpty)
        harness.expectNoRejectsFromPeer()
        feed.cancel()
        await harness.stop()
    }

    @Test("disconnect mid-burst loses no execution report (with and without ResetSeqNumFlag on the first logon)",
          arguments: [false, true])
    func disconnectMidBurstLosesNoExecutionReport(reset: Bool) async throws {
        let harness = try await Harness.start(reset: reset)
        let (manager, feed) = manager(over: harness)
        let spec = BracketSpec(positionID: "P1", symbol: "GLD", side: .buy, quantity: 1000, entryType: .limit(Price("248")!),
                               stopLoss: Price("245"), takeProfit: Price("250"))
        try await manager.open(spec)
        await manager.waitUntilIdle()
        let entry = try #require(await manager.position("P1")?.liveOrder(.entry))
        // 20 partial fills of 50; the connection drops after the 7th. The exchange turns logons away
        // for a while, so fills 8-20 are certainly produced while FillGuard is away: they must come
        // back through the resend after the reconnection.
        for _ in 1...7 { try await harness.peer.command("fill \(entry.id) 50 248") }
        try await harness.peer.command("reject-logon on")
        let mark = harness.peer.lines.count
        try await harness.peer.command("drop")
        try await harness.peer.waitFor(from: mark) { $0 == "EVENT logout" }
        for _ in 8...20 { try await harness.peer.command("fill \(entry.id) 50 248") }
        try await harness.peer.waitFor(from: mark) { $0 == "EVENT logon-rejected" }
        try await harness.peer.command("reject-logon off")
        try await harness.broker.waitForLogons(2)
        let position = try await settle(manager, "P1") { position in
            position.netQuantity == 1000 && position.liveOrder(.stopLoss)?.openQuantity == 1000
                && position.liveOrder(.takeProfit)?.openQuantity == 1000
        }
        #expect(position.netQuantity == 1000)
        #expect(await harness.broker.statistics.fillsDelivered == 20)
        #expect(harness.peer.events.contains { $0.hasPrefix("resend-request") }, "FillGuard asked for the missed reports: \(harness.peer.events)")
        let orders = try await harness.peer.orders()
        let protective = orders.values.filter { $0.isLive }
        #expect(protective.count == 2)
        #expect(Set(protective.map(\.leaves)) == ["1000"])
        #expect(await manager.invariantViolations().isEmpty)
        harness.expectNoRejectsFromPeer()
        feed.cancel()
        await harness.stop()
    }

    @Test func duplicateReportsDoNotDoubleThePosition() async throws {
        let harness = try await Harness.start()
        let (manager, feed) = manager(over: harness)
        try await manager.open(bracket)
        await manager.waitUntilIdle()
        let entry = try #require(await manager.position("P1")?.liveOrder(.entry))
        let answer = try await harness.peer.command("fill \(entry.id) 100 248.1")
        let execID = String(answer.dropFirst(3))
        try await harness.peer.command("dup \(execID)")
        try await harness.peer.command("dup \(execID)")
        try await harness.peer.command("fill \(entry.id) 200 248.2")
        let position = try await settle(manager, "P1") { $0.netQuantity == 300 }
        #expect(position.netQuantity == 300)
        #expect(await harness.broker.statistics.duplicateReports == 2)
        let orders = try await harness.peer.orders()
        #expect(orders.values.filter(\.isLive).filter { $0.side == "2" }.map(\.leaves) == ["300", "300"])
        #expect(await manager.invariantViolations().isEmpty)
        harness.expectNoRejectsFromPeer()
        feed.cancel()
        await harness.stop()
    }
}
