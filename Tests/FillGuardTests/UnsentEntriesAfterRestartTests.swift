import FillGuard
import FillGuardCore
import Testing

/// Entries and scale-ins the broker never got when the process stopped: sent after the restart
/// (`UnsentEntryPolicy.send`, the default), or refused (`.refuse`), never sent late.
@Suite("Unsent entries after a restart", .timeLimit(.minutes(1)))
struct UnsentEntriesAfterRestartTests {
    private static func configuration(_ policy: UnsentEntryPolicy, retryAfter delay: Duration = .milliseconds(1)) -> FillGuardConfiguration {
        var configuration = FillGuardConfiguration(retry: RetryPolicy(maxAttempts: 3, baseDelay: delay, maxDelay: delay))
        configuration.unsentEntries = policy
        return configuration
    }

    /// Restarts from `store` against a broker that has none of P1's orders but `listed` (and
    /// cannot say where any order stands, if `unreadable`).
    private static func restart(_ store: InMemoryJournalStore, _ policy: UnsentEntryPolicy, listed: [BrokerOrderState] = [], unreadable: Bool = false)
        async throws -> (FillManager, QueryingTestBroker, RecoveryReport, AsyncStream<Alert>) {
        let broker = QueryingTestBroker()
        for state in listed { broker.lists(state) }
        if unreadable { broker.failStateQueries() }
        let manager = FillManager(broker: broker, journal: Journal(store: store), configuration: configuration(policy), logger: .quiet)
        let alerts = manager.alerts()
        let report = try await manager.recover()
        await manager.waitUntilIdle()
        return (manager, broker, report, alerts)
    }

    @Test("submits sent but unanswered when the process stopped, which the broker never got: sent again, or refused", arguments: UnsentEntryPolicy.allCases)
    func unansweredSubmits(policy: UnsentEntryPolicy) async throws {
        let first = TestBroker()
        let store = InMemoryJournalStore()
        let before = FillManager(broker: first, journal: Journal(store: store), configuration: Self.configuration(policy), logger: .quiet)
        _ = try await before.recover()
        first.hold()
        try await before.open(.long("P1", "UNS"))
        await first.waitForHeld(2)
        let crashed = store.fork()
        first.releaseAll()
        await before.shutdown()

        let (manager, broker, report, alerts) = try await Self.restart(crashed, policy)
        let position = try #require(await manager.position("P1"))
        let entry = try #require(position.orders.first { $0.role == .entry })
        switch policy {
        case .send:
            #expect(broker.orders.requests.filter { $0.kind == .submit }.count == 2, "entry and scale-in sent again")
            #expect(position.liveOrder(.entry) != nil)
            #expect(!report.corrections.contains { $0.kind == .entryRefused })
        case .refuse:
            #expect(broker.orders.requests.isEmpty, "nothing sent: \(broker.orders.requests)")
            #expect(report.corrections.filter { $0.kind == .entryRefused }.map(\.orderID).count == 2, "\(report.corrections)")
            #expect(entry.status == .rejected && position.liveOrders.isEmpty && position.status == .closed, "\(position)")
            var iterator = alerts.makeAsyncIterator()
            let alert = await iterator.next()
            #expect(alert?.kind == .entryRejected && alert?.message.contains("unsentEntries: refuse") == true, "\(String(describing: alert))")
            #expect(alert?.message.contains("held while recovery compares") == false, "nothing is left to send: \(String(describing: alert))")
        }
        #expect(await manager.invariantViolations().isEmpty)
        let journaled = crashed.fork()
        let positions = await manager.positions()
        await manager.shutdown()
        guard policy == .refuse else { return }
        // The refusal is journaled: a second restart replays it, and sends nothing.
        let (second, secondBroker, secondReport, _) = try await Self.restart(journaled, policy)
        #expect(await second.positions() == positions)
        #expect(secondBroker.orders.requests.isEmpty && secondReport.corrections.isEmpty, "\(secondReport.corrections)")
        await second.shutdown()
    }

    @Test("an entry waiting out a retry when the process stopped, which the broker never got: sent, or refused (its scale-in, which the broker works, is then cancelled)",
          arguments: UnsentEntryPolicy.allCases)
    func entryAwaitingRetry(policy: UnsentEntryPolicy) async throws {
        try await Self.restartWithEntryAwaitingRetry(policy, unreadable: false)
    }

    @Test("an entry waiting out a retry that the broker cannot be asked about after the restart is sent, even with .refuse: a resend is the same order")
    func unreadableEntryIsSent() async throws {
        try await Self.restartWithEntryAwaitingRetry(.refuse, unreadable: true)
    }

    /// P1's entry fails once and waits out an hour's backoff, its scale-in works; the process
    /// stops and restarts under `policy`.
    private static func restartWithEntryAwaitingRetry(_ policy: UnsentEntryPolicy, unreadable: Bool) async throws {
        let first = TestBroker()
        let store = InMemoryJournalStore()
        // The entry's submit fails once; its retry is due in an hour.
        let before = FillManager(broker: first, journal: Journal(store: store), configuration: Self.configuration(policy, retryAfter: .seconds(3_600)), logger: .quiet)
        _ = try await before.recover()
        let changes = before.orderChanges()
        first.fail(1, .submit, with: BrokerError(.transient, "venue busy"))
        try await before.open(.long("P1", "UNR"))
        // The entry's snapshot is published when it opens, and again once its failure is applied
        // (journaled first); the scale-in's once it is working.
        var entryChanges = 0
        var scaleInWorking = false
        for await order in changes {
            if order.role == .entry { entryChanges += 1 }
            if order.role == .scaleIn(0), order.status == .working { scaleInWorking = true }
            if entryChanges >= 2, scaleInWorking { break }
        }
        let crashed = store.fork()
        let scaleIn = try #require(await before.position("P1")?.liveOrder(.scaleIn(0)))
        #expect(scaleIn.status == .working)
        await before.shutdown(waitingAtMost: .zero)

        let listed = BrokerOrderState(orderID: scaleIn.id, symbol: "UNR", side: .buy, type: scaleIn.type, quantity: 100, filled: .zero, status: .working)
        let (manager, broker, report, alerts) = try await Self.restart(crashed, policy, listed: [listed], unreadable: unreadable)
        let position = try #require(await manager.position("P1"))
        let entry = try #require(position.orders.first { $0.role == .entry })
        switch policy {
        case _ where unreadable:
            #expect(broker.orders.requests.filter { $0.orderID == entry.id }.map(\.kind) == [.submit], "the entry is sent: \(broker.orders.requests)")
            #expect(!report.corrections.contains { $0.kind == .entryRefused }, "\(report.corrections)")
            #expect(report.corrections.contains { $0.kind == .notReconciled && $0.orderID == entry.id }, "\(report.corrections)")
        case .send:
            #expect(broker.orders.requests.map(\.kind) == [.submit], "the entry is sent: \(broker.orders.requests)")
            #expect(position.liveOrder(.scaleIn(0))?.id == scaleIn.id)
        case .refuse:
            #expect(!broker.orders.requests.contains { $0.orderID == entry.id }, "\(broker.orders.requests)")
            #expect(report.corrections.filter { $0.kind == .entryRefused }.map(\.orderID) == [entry.id], "\(report.corrections)")
            #expect(!report.corrections.contains { $0.kind == .resumedWork && $0.orderID == entry.id }, "not said to be resumed: \(report.corrections)")
            #expect(entry.status == .rejected)
            var iterator = alerts.makeAsyncIterator()
            let alert = await iterator.next()
            #expect(alert?.kind == .entryRejected && alert?.message.contains("\(scaleIn.id) is being cancelled") == true, "the scale-in's cancel is said: \(String(describing: alert))")
            #expect(alert?.message.contains("held while recovery compares") == true, "the cancel waits for the end of reconciliation: \(String(describing: alert))")
            #expect(broker.orders.requests.map(\.kind) == [.cancel] && position.liveOrders.isEmpty, "the scale-in goes with its entry: \(broker.orders.requests)")
        }
        #expect(await manager.invariantViolations().isEmpty)
        let journaled = crashed.fork()
        let positions = await manager.positions()
        await manager.shutdown()
        guard policy == .refuse, !unreadable else { return }
        // The refusal of an order in its backoff is journaled (its intent, then the answer): a
        // second restart replays it to the same state, and sends nothing.
        let (second, secondBroker, _, _) = try await Self.restart(journaled, policy)
        #expect(await second.positions() == positions)
        #expect(secondBroker.orders.requests.isEmpty, "\(secondBroker.orders.requests)")
        #expect(await second.invariantViolations().isEmpty)
        await second.shutdown()
    }
}
